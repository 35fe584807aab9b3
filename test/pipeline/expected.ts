/** What every table must hold after a plan was produced and fully consumed: the exactly-once check. */
import { expect } from "vitest"
import { clickhouseCounts, type Deployment, pgQuery, type PlanTally } from "../support/daemon.ts"

/** The detector's features that are numbers or booleans: one `fraud_features` row each. */
export const numericFeaturesPerResult = 14

export const expectExactlyOnce = async (deployment: Deployment, tally: PlanTally) => {
  const detections = Object.values(tally.detections).reduce((a, b) => a + b, 0)
  const url = deployment.databaseUrl
  // Dead letters first: a wrong one says more when its message is in view.
  const kinds = await pgQuery<{ error_kind: string; n: string; example: string }>(
    url,
    "SELECT error_kind, count(*) AS n, min(error_message) AS example FROM dead_letters GROUP BY error_kind"
  )
  const expectedKinds = Object.fromEntries(Object.entries(tally.malformed).filter(([, n]) => n > 0))
  expect(Object.fromEntries(kinds.map((k) => [k.error_kind, Number(k.n)])), JSON.stringify(kinds)).toEqual(
    expectedKinds
  )

  const [pgCounts] = await pgQuery<Record<string, string>>(
    url,
    `SELECT (SELECT count(*) FROM fraud_alerts) AS alerts,
            (SELECT count(DISTINCT transaction_id) FROM fraud_alerts) AS distinct_alerts,
            (SELECT count(*) FROM outbox) AS outbox,
            (SELECT count(*) FROM outbox WHERE published_at IS NULL) AS unpublished,
            (SELECT coalesce(sum(alert_count), 0) FROM user_accounts) AS counted_alerts,
            (SELECT count(*) FROM user_accounts WHERE status = 'BLOCKED') AS blocked,
            (SELECT count(*) FROM system_audit_log) AS audit_rows,
            (SELECT count(*) FROM dead_letters) AS dead_letters`
  )
  expect({
    alerts: Number(pgCounts!.alerts),
    distinctAlerts: Number(pgCounts!.distinct_alerts),
    outbox: Number(pgCounts!.outbox),
    unpublished: Number(pgCounts!.unpublished),
    countedAlerts: Number(pgCounts!.counted_alerts),
    auditRows: Number(pgCounts!.audit_rows),
    deadLetters: Number(pgCounts!.dead_letters)
  }).toEqual({
    alerts: tally.alerts,
    distinctAlerts: tally.alerts,
    outbox: tally.alerts,
    unpublished: 0,
    countedAlerts: tally.alerts,
    // One row per alert created, one per account blocked, one per audit event.
    auditRows: tally.alerts + Number(pgCounts!.blocked) + tally.audits,
    deadLetters: Object.values(tally.malformed).reduce((a, b) => a + b, 0)
  })
  const ch = await clickhouseCounts(deployment, [
    "transaction_records",
    "detection_results",
    "fraud_features",
    "performance_metrics",
    "alerts"
  ])
  expect(ch).toEqual({
    transaction_records: detections + tally.transactions,
    detection_results: detections,
    fraud_features: detections * numericFeaturesPerResult,
    performance_metrics: tally.metrics,
    alerts: tally.alerts
  })
}
