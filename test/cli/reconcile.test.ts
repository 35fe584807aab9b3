import { afterAll, beforeAll, describe, expect, it } from "vitest"
import {
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
import { clickhouse, expectUsage } from "./support.ts"

interface Differences {
  readonly count: number
  readonly alerts: ReadonlyArray<{ readonly alertId: string; readonly rows: number }>
}

interface Report {
  readonly postgres: number
  readonly clickhouse: number
  readonly hours: ReadonlyArray<{ readonly hour: string; readonly postgres: number; readonly clickhouse: number }>
  readonly missing: Differences
  readonly pending: Differences
  readonly extra: Differences
  readonly duplicated: Differences
  readonly repaired: { readonly requeued: number; readonly rebuilt: number } | null
}

const extraAlert = "00000000-0000-4000-8000-000000000001"

describe("sentinel reconcile", () => {
  let deployment: Deployment
  beforeAll(async () => {
    deployment = await freshDeployment()
    await sentinel(deployment.env, "migrate")
  })
  afterAll(() => deployment.drop())

  it("finds the alerts ClickHouse lacks or has too many of, and repairs the missing ones exactly once", async () => {
    const tally = await produce(deployment.env, "--count", "800", "--malformed", "0", "--seed", "31")
    const daemon = startDaemon(deployment.env)
    try {
      await waitFor("every record committed and every alert relayed", () => drained(deployment, tally.alerts))
    } finally {
      expect(await stopDaemon(daemon), daemon.output()).toEqual({ code: 0, signal: null })
    }
    const reconcile = async (...args: Array<string>) => {
      const outcome = await sentinelExit(deployment.env, "reconcile", ...args, "--json")
      expect(outcome.stderr).toBe("")
      return { code: outcome.code, report: JSON.parse(outcome.stdout) as Report }
    }
    const consistent = await reconcile()
    expect(consistent.code).toBe(0)
    expect(consistent.report).toMatchObject({
      postgres: tally.alerts,
      clickhouse: tally.alerts,
      missing: { count: 0 },
      extra: { count: 0 },
      duplicated: { count: 0 },
      repaired: null
    })

    // ClickHouse loses two alerts, one of them also pruned from the outbox; a stranger appears.
    const alerts = await pgQuery<{ alert_id: string; created_at: Date }>(
      deployment.databaseUrl,
      "SELECT alert_id::text AS alert_id, created_at FROM fraud_alerts ORDER BY transaction_id"
    )
    const [lost, pruned] = [alerts[10]!.alert_id, alerts[20]!.alert_id]
    await pgQuery(deployment.databaseUrl, "DELETE FROM outbox WHERE alert_id = $1", [pruned])
    // Aliases are not column names: ClickHouse would read `alert_id` in WHERE as the alias.
    const columns = "toString(a.alert_id) AS id, a.transaction_id, a.user_id, a.severity, a.fraud_score, a.amount, " +
      "a.rules_triggered, toString(a.transaction_time) AS transaction, toString(a.created_at) AS created, a.trace_id"
    const [before] = await clickhouse(deployment, [
      {
        query: `SELECT ${columns} FROM alerts AS a WHERE a.alert_id IN {ids:Array(UUID)} ORDER BY id`,
        params: { ids: [lost, pruned] },
        rows: true
      },
      { query: "DELETE FROM alerts WHERE alert_id IN {ids:Array(UUID)}", params: { ids: [lost, pruned] } },
      {
        query: `INSERT INTO alerts (alert_id, transaction_id, user_id, severity, fraud_score, amount, rules_triggered,
                                    transaction_time, created_at, outbox_id, trace_id)
                VALUES ({id:UUID}, 'T-STRANGER', 'U-STRANGER', 'HIGH', 0.9, 10, [], {at:DateTime64(6, 'UTC')},
                        {at:DateTime64(6, 'UTC')}, 0, '')`,
        params: { id: extraAlert, at: alerts[0]!.created_at.toISOString().slice(0, 23).replace("T", " ") }
      }
    ])
    expect(before).toHaveLength(2)

    const found = await reconcile()
    expect(found.code).toBe(3)
    expect(found.report.missing.alerts.map((alert) => alert.alertId).sort()).toEqual([lost, pruned].sort())
    expect(found.report).toMatchObject({
      postgres: tally.alerts,
      clickhouse: tally.alerts - 1,
      missing: { count: 2 },
      pending: { count: 0 },
      extra: { count: 1, alerts: [{ alertId: extraAlert, rows: 1 }] },
      duplicated: { count: 0 }
    })
    expect(found.report.hours.reduce((sum, hour) => sum + hour.postgres, 0)).toBe(tally.alerts)
    const human = await sentinelExit(deployment.env, "reconcile")
    expect(human.code).toBe(3)
    expect(human.stdout).toContain("missing from ClickHouse: 2")
    expect(human.stdout).toContain(extraAlert)

    // Repair: the lost alert's outbox row is re-queued, the pruned one's rebuilt; both relayed here.
    const repaired = await reconcile("--repair")
    expect(repaired.code).toBe(3) // the stranger stays: reported, never deleted
    expect(repaired.report).toMatchObject({ missing: { count: 2 }, repaired: { requeued: 1, rebuilt: 1 } })
    const after = await reconcile()
    expect(after.code).toBe(3)
    expect(after.report).toMatchObject({
      clickhouse: tally.alerts + 1,
      missing: { count: 0 },
      pending: { count: 0 },
      extra: { count: 1, alerts: [{ alertId: extraAlert }] },
      duplicated: { count: 0 }
    })
    const [perAlert, restored] = await clickhouse(deployment, [
      {
        query: "SELECT max(n) AS most, count() AS alerts FROM (SELECT count() AS n FROM alerts GROUP BY alert_id)",
        rows: true
      },
      {
        query: `SELECT ${columns} FROM alerts AS a WHERE a.alert_id IN {ids:Array(UUID)} ORDER BY id`,
        params: { ids: [lost, pruned] },
        rows: true
      },
      { query: "DELETE FROM alerts WHERE alert_id = {id:UUID}", params: { id: extraAlert } }
    ])
    expect(perAlert!.map((row) => [Number(row.most), Number(row.alerts)])).toEqual([[1, tally.alerts + 1]])
    // The rebuilt row is the row the writer had built (no trace context: the repair is not a batch).
    expect(restored).toEqual(before!.map((row) => (row.id === pruned ? { ...row, trace_id: "" } : row)))

    const clean = await sentinelExit(deployment.env, "reconcile")
    expect(clean.code).toBe(0)
    expect(clean.stdout.trim().split("\n").at(-1)).toBe("consistent")
    const empty = await reconcile("--since", "2000-01-01T00:00:00Z", "--until", "2000-01-02T00:00:00Z")
    expect(empty).toMatchObject({ code: 0, report: { postgres: 0, clickhouse: 0, hours: [] } })
  }, 600_000)

  it(
    "prints its usage for --help and refuses bad command lines with exit code 2",
    () =>
      expectUsage(deployment.env, "reconcile", [[]], [
        ["now"],
        ["--since", "yesterday"],
        ["--since", "2025-01-02T00:00:00Z", "--until", "2025-01-01T00:00:00Z"],
        ["--repair=yes"]
      ]),
    300_000
  )
})
