import { afterAll, beforeAll, describe, expect, it } from "vitest"
import {
  type Deployment,
  drained,
  freshDeployment,
  pgQuery,
  produce,
  sentinel,
  startDaemon,
  stopDaemon,
  waitFor
} from "../support/daemon.ts"
import { clickhouse, expectUsage } from "./support.ts"

interface Backlog {
  readonly pending: number
  readonly unclaimed: number
  readonly inFlight: number
  readonly expired: number
  readonly oldestPendingAgeSeconds: number | null
  readonly published: number
  readonly publishedIds: { readonly first: string; readonly last: string } | null
}

describe("sentinel outbox", () => {
  let deployment: Deployment
  beforeAll(async () => {
    deployment = await freshDeployment()
    await sentinel(deployment.env, "migrate")
  })
  afterAll(() => deployment.drop())

  it("redrive re-sends exactly the alerts ClickHouse lost, each once", async () => {
    const tally = await produce(deployment.env, "--count", "1500", "--malformed", "0", "--seed", "21")
    const backlog = async () => JSON.parse(await sentinel(deployment.env, "outbox", "backlog", "--json")) as Backlog
    const run = async (alerts: number) => {
      const daemon = startDaemon(deployment.env)
      try {
        await waitFor("every record committed and every alert relayed", () => drained(deployment, alerts))
      } finally {
        expect(await stopDaemon(daemon), daemon.output()).toEqual({ code: 0, signal: null })
      }
    }
    await run(tally.alerts)
    const relayed = await backlog()
    expect(relayed).toMatchObject({ pending: 0, published: tally.alerts, oldestPendingAgeSeconds: null })
    expect(await sentinel(deployment.env, "outbox", "backlog")).toMatch(/^pending\s+0\n/)

    // ClickHouse loses five alerts at the start of the outbox and one in the middle.
    const outbox = await pgQuery<{ id: string; alert_id: string }>(
      deployment.databaseUrl,
      "SELECT id, alert_id::text AS alert_id FROM outbox ORDER BY id"
    )
    const middle = Math.floor(outbox.length / 2)
    const lost = [...outbox.slice(0, 5), outbox[middle]!]
    await clickhouse(deployment, [{
      query: "DELETE FROM alerts WHERE alert_id IN {ids:Array(UUID)}",
      params: { ids: lost.map((row) => row.alert_id) }
    }])

    // A range covering three of the first five, the middle one and alerts still present.
    const [from, to] = [outbox[2]!.id, outbox[middle + 10]!.id]
    const inRange = outbox.filter((row) => BigInt(row.id) >= BigInt(from) && BigInt(row.id) <= BigInt(to))
    const lostInRange = lost.filter((row) => inRange.includes(row))
    expect(lostInRange).toHaveLength(4)
    const redrive = async (...args: Array<string>) =>
      JSON.parse(await sentinel(deployment.env, "outbox", "redrive", ...args, "--json")) as Record<string, unknown>
    expect(await redrive("--from", from, "--to", to, "--dry-run")).toEqual({
      from,
      to,
      dryRun: true,
      checked: inRange.length,
      requeued: 4,
      alreadyPresent: inRange.length - 4,
      pending: 0
    })
    expect(await backlog()).toMatchObject({ pending: 0 })
    expect(await redrive("--from", from, "--to", to)).toMatchObject({
      requeued: 4,
      alreadyPresent: inRange.length - 4
    })
    expect(await backlog()).toMatchObject({ pending: 4, unclaimed: 4, inFlight: 0, expired: 0 })
    // Again: nothing more is queued, the re-queued rows have left the range (they took new ids).
    expect(await redrive("--from", from, "--to", to)).toMatchObject({
      checked: inRange.length - 4,
      requeued: 0,
      alreadyPresent: inRange.length - 4
    })
    expect(await redrive("--from", outbox[0]!.id, "--to", outbox[1]!.id)).toMatchObject({ requeued: 2 })
    const human = await sentinel(deployment.env, "outbox", "redrive", "--from", from, "--to", to)
    expect(human).toContain(`re-queued 0 of ${inRange.length - 4} published alerts of outbox ids ${from} to ${to}`)

    await run(tally.alerts)
    const [counts, redelivered] = await clickhouse(deployment, [
      { query: "SELECT count() AS n, uniqExact(alert_id) AS alerts FROM alerts", rows: true },
      {
        query: `SELECT toString(a.alert_id) AS id, count() AS n, min(a.outbox_id) AS outbox FROM alerts AS a
                WHERE a.alert_id IN {ids:Array(UUID)} GROUP BY a.alert_id`,
        params: { ids: lost.map((row) => row.alert_id) },
        rows: true
      }
    ])
    expect(counts!.map((row) => [Number(row.n), Number(row.alerts)])).toEqual([[tally.alerts, tally.alerts]])
    expect(redelivered!.map((row) => row.id).sort()).toEqual(lost.map((row) => row.alert_id).sort())
    for (const row of redelivered!) {
      expect(Number(row.n)).toBe(1)
      // Delivered under a new outbox id, so under a relay token ClickHouse had not seen.
      expect(Number(row.outbox)).toBeGreaterThan(Number(outbox[outbox.length - 1]!.id))
    }
    expect(await backlog()).toMatchObject({ pending: 0, published: tally.alerts })
  }, 600_000)

  it(
    "prints its usage for --help and refuses bad command lines with exit code 2",
    () =>
      expectUsage(deployment.env, "outbox", [[], ["backlog"], ["redrive"]], [
        [],
        ["flush"],
        ["backlog", "--from", "1"],
        ["redrive", "--from", "1"],
        ["redrive", "--from", "5", "--to", "2"],
        ["redrive", "--from", "x", "--to", "2"]
      ]),
    300_000
  )
})
