import { Redacted } from "effect"
import { execFile } from "node:child_process"
import * as path from "node:path"
import { promisify } from "node:util"
import { describe, expect, it } from "vitest"
import * as Pseudonymisation from "../../../src/sinks/clickhouse/Pseudonymisation.ts"
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
} from "../../support/daemon.ts"
import { projectRoot } from "../../support/services.ts"

const key = "0123456789abcdef0123456789abcdef"

describe("Pseudonymisation", () => {
  it("is the first 32 hex digits of HMAC-SHA256(key, user id), as openssl computes it", async () => {
    const { userId } = Pseudonymisation.make(Redacted.make(key))
    // echo -n U000123 | openssl dgst -sha256 -hmac 0123456789abcdef0123456789abcdef
    const { stdout } = await promisify(execFile)("sh", ["-c", `printf %s U000123 | openssl dgst -sha256 -hmac ${key}`])
    const digest = stdout.trim().split("= ")[1]!
    expect(userId("U000123")).toBe(digest.slice(0, 32))
    expect(userId("U000123")).toBe("20f372f4b75ca546990f8bdbd37dbdb3")
    expect(userId("U000124")).not.toBe(userId("U000123"))
    expect(Pseudonymisation.make(Redacted.make(`${key}!`)).userId("U000123")).not.toBe(userId("U000123"))
    expect(Pseudonymisation.make(undefined).userId("U000123")).toBe("U000123")
  })
})

/** Rows of a ClickHouse query against the deployment's chDB folder, read once the daemon has exited. */
const clickhouse = async <Row>(deployment: Deployment, query: string): Promise<ReadonlyArray<Row>> => {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    [
      "--import",
      "tsx",
      path.join(projectRoot, "test", "support", "clickhouseQuery.ts"),
      deployment.clickhousePath,
      query
    ],
    { cwd: projectRoot, maxBuffer: 64 * 1024 * 1024 }
  )
  return JSON.parse(stdout) as ReadonlyArray<Row>
}

/** Every (table, transaction, user) Sentinel wrote to ClickHouse, after a run over `records` records. */
const runDeployment = async (overrides: Record<string, string>) => {
  const deployment = await freshDeployment(overrides)
  try {
    await sentinel(deployment.env, "migrate")
    const tally = await produce(
      deployment.env,
      "--count",
      "400",
      "--malformed",
      "0",
      "--duplicates",
      "0",
      "--alert-share",
      "0.5",
      "--seed",
      "7"
    )
    const daemon = startDaemon(deployment.env)
    await waitFor("every record committed and every alert relayed", () => drained(deployment, tally.alerts))
    expect(await stopDaemon(daemon), daemon.output()).toEqual({ code: 0, signal: null })
    const postgres = await pgQuery<{ transaction_id: string; user_id: string }>(
      deployment.databaseUrl,
      "SELECT transaction_id, user_id FROM fraud_alerts"
    )
    const accounts = await pgQuery<{ user_id: string }>(deployment.databaseUrl, "SELECT user_id FROM user_accounts")
    const rows = await clickhouse<{ source: string; transaction_id: string; user_id: string }>(
      deployment,
      `SELECT 'transaction_records' AS source, transaction_id, user_id FROM transaction_records
       UNION ALL SELECT 'detection_results', transaction_id, user_id FROM detection_results
       UNION ALL SELECT DISTINCT 'fraud_features', transaction_id, user_id FROM fraud_features
       UNION ALL SELECT 'alerts', transaction_id, user_id FROM alerts
       UNION ALL SELECT DISTINCT 'user_activity_daily', '', user_id FROM user_activity_daily`
    )
    // Joins by user still work: each alert meets its own detection result on the user column.
    const [joined] = await clickhouse<{ n: string }>(
      deployment,
      `SELECT count() AS n FROM alerts AS a
       INNER JOIN detection_results AS d ON a.transaction_id = d.transaction_id AND a.user_id = d.user_id`
    )
    return { tally, postgres, accounts, rows, joined: Number(joined!.n) }
  } finally {
    await deployment.drop()
  }
}

describe("sentinel run with SENTINEL_PSEUDONYMISE_KEY", () => {
  it("writes HMAC pseudonyms to every ClickHouse table and raw ids to PostgreSQL", async () => {
    const { accounts, joined, postgres, rows, tally } = await runDeployment({ SENTINEL_PSEUDONYMISE_KEY: key })
    const { userId } = Pseudonymisation.make(Redacted.make(key))
    expect(tally.alerts).toBeGreaterThan(50)
    expect(postgres).toHaveLength(tally.alerts)

    // PostgreSQL keeps the raw ids, so investigators see who it is.
    for (const alert of postgres) expect(alert.user_id).toMatch(/^U\d+$/)
    for (const account of accounts) expect(account.user_id).toMatch(/^U\d+$/)

    // ClickHouse has only pseudonyms, in every table, never a raw id.
    const sources = new Set(rows.map((row) => row.source))
    expect([...sources].sort()).toEqual(
      ["alerts", "detection_results", "fraud_features", "transaction_records", "user_activity_daily"]
    )
    for (const row of rows) expect(row.user_id, `${row.source} ${row.transaction_id}`).toMatch(/^[0-9a-f]{32}$/)

    // The pseudonym is the raw id's HMAC: the alerts relayed from the outbox carry exactly that.
    const alerts = new Map(
      rows.filter((row) => row.source === "alerts").map((row) => [row.transaction_id, row.user_id])
    )
    expect(alerts.size).toBe(tally.alerts)
    for (const alert of postgres) expect(alerts.get(alert.transaction_id)).toBe(userId(alert.user_id))

    // The same transaction has the same pseudonym in every table: joins by user still work.
    const byTransaction = new Map<string, Set<string>>()
    for (const row of rows.filter((row) => row.transaction_id !== "")) {
      byTransaction.set(row.transaction_id, (byTransaction.get(row.transaction_id) ?? new Set()).add(row.user_id))
    }
    for (const [transaction, users] of byTransaction) expect(users.size, transaction).toBe(1)
    expect(joined).toBe(tally.alerts)
  }, 300_000)

  it("writes raw ids without the key", async () => {
    const { joined, postgres, rows, tally } = await runDeployment({})
    for (const row of rows) expect(row.user_id, `${row.source} ${row.transaction_id}`).toMatch(/^U\d+$/)
    const alerts = new Map(
      rows.filter((row) => row.source === "alerts").map((row) => [row.transaction_id, row.user_id])
    )
    for (const alert of postgres) expect(alerts.get(alert.transaction_id)).toBe(alert.user_id)
    expect(joined).toBe(tally.alerts)
  }, 300_000)
})
