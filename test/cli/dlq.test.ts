import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { detectionResult, pythonJson, seededRng } from "../../src/produce/DetectorOutput.ts"
import {
  clickhouseCounts,
  consumerLag,
  type Deployment,
  drained,
  freshDeployment,
  pgQuery,
  produce,
  sentinel,
  sentinelExit,
  startDaemon,
  stopDaemon,
  waitFor
} from "../support/daemon.ts"
import { kafkaFor } from "../support/services.ts"
import { clickhouse, expectUsage } from "./support.ts"

interface ListedLetter {
  readonly id: string
  readonly error: { readonly kind: string; readonly message: string }
  readonly source: { readonly topic: string; readonly offset: string }
  readonly headers: Record<string, string>
  readonly value: { readonly encoding: "utf8" | "base64"; readonly bytes: number; readonly text: string } | null
  readonly replayedAt: string | null
  readonly replayCount: number
}

const jsonLines = <A>(stdout: string): Array<A> =>
  stdout.trim() === "" ? [] : stdout.trim().split("\n").map((line) => JSON.parse(line) as A)

// Valid detections PostgreSQL refuses while a limit on amounts stands: the cause an operator can fix.
const refused = ["T9000000001", "T9000000002"]

describe("sentinel dlq", () => {
  let deployment: Deployment
  beforeAll(async () => {
    deployment = await freshDeployment()
    await sentinel(deployment.env, "migrate")
  })
  afterAll(() => deployment.drop())

  it("lists and shows dead letters, and replays them exactly once after their cause is fixed", async () => {
    const url = deployment.databaseUrl
    await pgQuery(url, "ALTER TABLE fraud_alerts ADD CONSTRAINT amount_limit CHECK (amount < 1000000)")
    const tally = await produce(
      deployment.env,
      "--count",
      "400",
      "--malformed",
      "0.05",
      "--duplicates",
      "0",
      "--seed",
      "11"
    )
    const malformed = Object.values(tally.malformed).reduce((a, b) => a + b, 0)
    const producer = kafkaFor().producer()
    await producer.connect()
    await producer.send({
      topic: deployment.env.SENTINEL_TOPIC_DETECTIONS!,
      messages: refused.map((transactionId, i) => {
        const result = { ...detectionResult(seededRng(500 + i), 500 + i), severity: "HIGH" as const, fraud_score: 0.85 }
        result.transaction = { ...result.transaction, transaction_id: transactionId, amount: 2_500_000 }
        return {
          key: result.transaction.user_id,
          value: pythonJson(result),
          headers: { "X-Correlation-ID": `refused-${i}` }
        }
      })
    })
    await producer.disconnect()

    const daemon = startDaemon(deployment.env)
    try {
      await waitFor("every record committed and every alert relayed", () => drained(deployment, tally.alerts))
      const deadLetters = async () =>
        Number((await pgQuery<{ n: string }>(url, "SELECT count(*) AS n FROM dead_letters"))[0]!.n)
      await waitFor("the dead letters", async () => (await deadLetters()) === malformed + 2 ? true : undefined)

      // list: newest first, as JSON lines or a table; filtered by kind.
      const listed = jsonLines<ListedLetter>(await sentinel(deployment.env, "dlq", "list", "--json", "--limit", "100"))
      expect(listed).toHaveLength(malformed + 2)
      const ids = listed.map((letter) => Number(letter.id))
      expect(ids).toEqual([...ids].sort((a, b) => b - a))
      expect(jsonLines(await sentinel(deployment.env, "dlq", "list", "--json", "--limit", "3"))).toHaveLength(3)
      const table = (await sentinel(deployment.env, "dlq", "list", "--kind", "rejected_by_postgres")).trim().split("\n")
      expect(table[0]).toMatch(/^ID\s+RECEIVED\s+KIND\s+SOURCE\s+REPLAYS\s+ERROR$/)
      expect(table.slice(1)).toHaveLength(2)
      for (const row of table.slice(1)) expect(row).toContain("amount_limit")
      const rejected = listed.filter((letter) => letter.error.kind === "rejected_by_postgres")
      expect(rejected).toHaveLength(2)

      // show: the whole letter, the value as text when it is UTF-8, else base64.
      const shown = JSON.parse(await sentinel(deployment.env, "dlq", "show", rejected[0]!.id, "--json")) as ListedLetter
      expect(shown).toMatchObject({
        id: rejected[0]!.id,
        error: { kind: "rejected_by_postgres" },
        source: { topic: deployment.env.SENTINEL_TOPIC_DETECTIONS },
        value: { encoding: "utf8" },
        replayedAt: null,
        replayCount: 0
      })
      expect(shown.headers["X-Correlation-ID"]).toMatch(/^refused-/)
      expect(refused).toContain(
        (JSON.parse(shown.value!.text) as { transaction: { transaction_id: string } })
          .transaction.transaction_id
      )
      const notUtf8 = listed.find((letter) => letter.error.kind === "not_utf8")!
      const raw = JSON.parse(await sentinel(deployment.env, "dlq", "show", notUtf8.id, "--json")) as ListedLetter
      expect(raw.value!.encoding).toBe("base64")
      expect(Buffer.from(raw.value!.text, "base64")).toHaveLength(raw.value!.bytes)
      const human = await sentinel(deployment.env, "dlq", "show", rejected[0]!.id)
      expect(human).toContain(`dead letter ${rejected[0]!.id}`)
      expect(human).toContain("rejected_by_postgres: ")
      expect((await sentinelExit(deployment.env, "dlq", "show", "999999")).code).toBe(1)

      // A dry run tells and touches nothing.
      const dryRun = JSON.parse(
        await sentinel(deployment.env, "dlq", "replay", "--kind", "rejected_by_postgres", "--dry-run")
      ) as Record<string, unknown>
      expect(dryRun).toMatchObject({ dryRun: true, replayed: 2, alreadyReplayed: 0 })

      // A record whose cause is not fixed fails again: a new dead letter, pointing at the old one.
      const invalid = listed.find((letter) => letter.error.kind === "invalid")!
      expect(JSON.parse(await sentinel(deployment.env, "dlq", "replay", "--id", invalid.id))).toMatchObject({
        replayed: 1,
        ids: [invalid.id]
      })
      const again = await waitFor("the replayed invalid record dead-lettered again", async () => {
        const [letter] = await pgQuery<{ error_kind: string; source_offset: string }>(
          url,
          "SELECT error_kind, source_offset FROM dead_letters WHERE headers->>'x-sentinel-replay-of' = $1",
          [invalid.id]
        )
        return letter
      })
      expect(again.error_kind).toBe("invalid")
      expect(again.source_offset).not.toBe(invalid.source.offset)

      // The cause is fixed; the two refused records are replayed and land.
      await pgQuery(url, "ALTER TABLE fraud_alerts DROP CONSTRAINT amount_limit")
      const replayed = JSON.parse(
        await sentinel(deployment.env, "dlq", "replay", "--kind", "rejected_by_postgres")
      ) as { replayed: number; ids: Array<string>; byTopic: Record<string, number> }
      expect(replayed).toMatchObject({ replayed: 2, alreadyReplayed: 0, unknownIds: [] })
      expect(replayed.ids.sort()).toEqual(rejected.map((letter) => letter.id).sort())
      expect(replayed.byTopic).toEqual({ [deployment.env.SENTINEL_TOPIC_DETECTIONS!]: 2 })
      await waitFor("the replayed alerts relayed", () => drained(deployment, tally.alerts + 2))

      // Replaying again needs --again.
      expect(JSON.parse(await sentinel(deployment.env, "dlq", "replay", "--kind", "rejected_by_postgres")))
        .toMatchObject({ replayed: 0, alreadyReplayed: 2 })
      expect(
        JSON.parse(
          await sentinel(deployment.env, "dlq", "replay", "--id", `${rejected[0]!.id},999999`, "--again", "--dry-run")
        )
      ).toMatchObject({ replayed: 1, unknownIds: ["999999"] })
      expect(await consumerLag(deployment)).toBe(0)
    } finally {
      expect(await stopDaemon(daemon), daemon.output()).toEqual({ code: 0, signal: null })
    }

    const letters = await pgQuery<{ id: string; replay_count: number; replayed: boolean }>(
      url,
      "SELECT id, replay_count, replayed_at IS NOT NULL AS replayed FROM dead_letters WHERE error_kind = 'rejected_by_postgres'"
    )
    expect(letters.map(({ replay_count, replayed }) => ({ replay_count, replayed }))).toEqual([
      { replay_count: 1, replayed: true },
      { replay_count: 1, replayed: true }
    ])
    // Only the invalid record's second failure was added: the replayed ones were stored, not refused.
    expect(Number((await pgQuery<{ n: string }>(url, "SELECT count(*) AS n FROM dead_letters"))[0]!.n)).toBe(
      malformed + 3
    )
    const stored = await pgQuery<{ transaction_id: string; n: string; outboxed: string }>(
      url,
      `SELECT a.transaction_id, count(*) AS n, (SELECT count(*) FROM outbox o WHERE o.alert_id = a.alert_id) AS outboxed
       FROM fraud_alerts a WHERE a.transaction_id = ANY($1) GROUP BY a.transaction_id, a.alert_id ORDER BY 1`,
      [refused]
    )
    expect(stored).toEqual(refused.map((transaction_id) => ({ transaction_id, n: "1", outboxed: "1" })))
    const [inClickHouse] = await clickhouse(deployment, [{
      query: `SELECT transaction_id, count() AS n FROM alerts WHERE transaction_id IN {ids:Array(String)}
              GROUP BY transaction_id ORDER BY transaction_id`,
      params: { ids: refused },
      rows: true
    }])
    expect(inClickHouse!.map((row) => [row.transaction_id, Number(row.n)])).toEqual(refused.map((id) => [id, 1]))
    // Their analytics rows had landed the first time; the replay added none.
    const detections = Object.values(tally.detections).reduce((a, b) => a + b, 0)
    expect(await clickhouseCounts(deployment, ["detection_results", "alerts"])).toEqual({
      detection_results: detections + 2,
      alerts: tally.alerts + 2
    })
  }, 600_000)

  it(
    "prints its usage for --help and refuses bad command lines with exit code 2",
    () =>
      expectUsage(deployment.env, "dlq", [[], ["list"], ["show"], ["replay"]], [
        [],
        ["frobnicate"],
        ["list", "--bogus"],
        ["list", "--limit", "0"],
        ["list", "--again"],
        ["show", "abc"],
        ["replay"]
      ]),
    300_000
  )
})
