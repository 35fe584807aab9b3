/**
 * What the demo shows, read from inside the daemon's process: throughput and dead letters from the
 * metrics registry, lag, outbox backlog and breakers from the daemon's own health, rows per table,
 * and three queries over the materialized views. ClickHouse is read through the daemon's client
 * (a chDB folder belongs to one client); PostgreSQL through a small pool of the login role's, as
 * the daemon's role may not read the audit log.
 */
import type { ClickHouseClient } from "@clickhouse/client"
import type { PgClient } from "@effect/sql-pg"
import { Effect, Metric, MetricLabel, MetricState } from "effect"
import type { Health, Readiness } from "../../telemetry/Health.ts"
import * as Metrics from "../../telemetry/Metrics.ts"

export const postgresTables = ["fraud_alerts", "user_accounts", "system_audit_log", "outbox", "dead_letters"] as const
export const clickhouseTables = [
  "transaction_records",
  "detection_results",
  "fraud_features",
  "performance_metrics",
  "alerts"
] as const

export type PostgresTable = typeof postgresTables[number]
export type ClickHouseTable = typeof clickhouseTables[number]

/** Rows per table, or why they could not be counted. */
export type Counts<Table extends string> = { readonly rows: Readonly<Record<Table, number>> } | {
  readonly unavailable: string
}

export interface Observation {
  /** Milliseconds since the demo's daemon started. */
  readonly elapsedMs: number
  readonly published: number
  /** Records made durable and committed, per path. */
  readonly durable: { readonly alerts: number; readonly analytics: number }
  readonly deadLetters: ReadonlyArray<readonly [reason: string, count: number]>
  readonly postgres: Counts<PostgresTable>
  readonly clickhouse: Counts<ClickHouseTable>
  readonly readiness: Readiness
}

/** A query over a materialized view, as shown, and its answer. */
export interface ViewQuery {
  readonly title: string
  readonly sql: string
}

export type Answer =
  & ViewQuery
  & ({ readonly rows: ReadonlyArray<Record<string, unknown>> } | {
    readonly unavailable: string
  })

// Columns qualified (r.flagged) throughout: an alias such as `sum(flagged) AS flagged` would otherwise
// be what a later `sum(flagged)` refers to (see clickhouse/0003_rollups.sql).
export const viewQueries: ReadonlyArray<ViewQuery> = [
  {
    title: "fraud rate per hour of transaction time, latest hours (fraud_rate_hourly)",
    sql: "SELECT r.hour AS hour, sum(r.transactions) AS transactions, sum(r.flagged) AS flagged, " +
      "sum(r.alerts) AS alerts, round(sum(r.flagged) / nullIf(sum(r.transactions), 0), 4) AS fraud_rate " +
      "FROM fraud_rate_hourly AS r GROUP BY hour ORDER BY hour DESC LIMIT 3"
  },
  {
    title: "model predictions and accuracy per model version (model_accuracy_hourly)",
    sql: "SELECT if(m.model_version = '', '(rules only)', m.model_version) AS model, " +
      "sum(m.predictions) AS predictions, round(sum(m.predicted_fraud) / sum(m.predictions), 4) AS flagged_share, " +
      "sum(m.labeled) AS labeled, " +
      "round((sum(m.true_positives) + sum(m.true_negatives)) / nullIf(sum(m.labeled), 0), 4) AS accuracy " +
      "FROM model_accuracy_hourly AS m GROUP BY m.model_version ORDER BY m.model_version"
  },
  {
    title: "users with the most alerts (user_activity_daily)",
    sql: "SELECT u.user_id AS user_id, sum(u.transactions) AS transactions, sum(u.alerts) AS alerts, " +
      "round(sum(u.amount_sum), 2) AS amount, round(max(u.max_fraud_score), 3) AS max_fraud_score " +
      "FROM user_activity_daily AS u GROUP BY u.user_id ORDER BY alerts DESC, user_id LIMIT 3"
  }
]

const messageOf = (error: unknown) => (error instanceof Error ? error.message : String(error))

const clickhouseRows = <Row>(client: ClickHouseClient, query: string) =>
  Effect.tryPromise({
    try: async () => (await client.query({ query, format: "JSONEachRow" })).json<Row>(),
    catch: messageOf
  })

const counted = <Table extends string>(
  rows: Effect.Effect<ReadonlyArray<Readonly<Record<Table, unknown>>>, unknown>,
  tables: ReadonlyArray<Table>
): Effect.Effect<Counts<Table>> =>
  rows.pipe(
    Effect.map(([row]) => ({
      rows: Object.fromEntries(tables.map((table) => [table, Number(row?.[table] ?? 0)])) as Record<Table, number>
    })),
    Effect.catchAll((error) => Effect.succeed({ unavailable: messageOf(error) }))
  )

const durable = (path: string) => Metrics.batchSize.unsafeValue([MetricLabel.make("path", path)]).sum

const deadLettersByReason = (): ReadonlyArray<readonly [string, number]> =>
  Metric.unsafeSnapshot()
    .filter(({ metricKey }) => metricKey.name === "sentinel_dead_letters_total")
    .flatMap(({ metricKey, metricState }) =>
      MetricState.isCounterState(metricState)
        ? [[metricKey.tags.find((tag) => tag.key === "reason")?.value ?? "?", Number(metricState.count)] as const]
        : []
    )
    .sort(([, a], [, b]) => b - a)

export interface Observer {
  readonly postgresCounts: Effect.Effect<Counts<PostgresTable>>
  readonly clickhouseCounts: Effect.Effect<Counts<ClickHouseTable>>
  readonly observe: (health: Health, published: number, elapsedMs: number) => Effect.Effect<Observation>
  readonly answers: Effect.Effect<ReadonlyArray<Answer>>
  /** The highest message number (transaction id `T<n>`) stored so far, if any. */
  readonly lastMessageNumber: Effect.Effect<number | undefined, unknown>
}

export const make = (postgres: PgClient.PgClient, clickhouse: ClickHouseClient): Observer => {
  const postgresCounts = counted<PostgresTable>(
    postgres<Record<PostgresTable, string>>`SELECT (SELECT count(*) FROM fraud_alerts) AS fraud_alerts,
                    (SELECT count(*) FROM user_accounts) AS user_accounts,
                    (SELECT count(*) FROM system_audit_log) AS system_audit_log,
                    (SELECT count(*) FROM outbox) AS outbox,
                    (SELECT count(*) FROM dead_letters) AS dead_letters`.pipe(
      // Counting every second is not work anyone wants to find in Jaeger.
      Effect.withTracerEnabled(false)
    ),
    postgresTables
  )
  const clickhouseCounts = counted<ClickHouseTable>(
    clickhouseRows(
      clickhouse,
      "SELECT (SELECT count() FROM transaction_records) AS transaction_records, " +
        "(SELECT count() FROM detection_results) AS detection_results, " +
        "(SELECT count() FROM fraud_features) AS fraud_features, " +
        "(SELECT count() FROM performance_metrics) AS performance_metrics, " +
        "(SELECT count() FROM alerts) AS alerts"
    ),
    clickhouseTables
  )
  const number = (transactionId: unknown) => {
    const match = /^T(\d+)$/.exec(String(transactionId ?? ""))
    return match === null ? undefined : Number(match[1])
  }
  return {
    postgresCounts,
    clickhouseCounts,
    observe: (health, published, elapsedMs) =>
      Effect.all({ postgres: postgresCounts, clickhouse: clickhouseCounts, readiness: health.readiness }).pipe(
        Effect.map((read) => ({
          ...read,
          elapsedMs,
          published,
          durable: { alerts: durable("alerts"), analytics: durable("analytics") },
          deadLetters: deadLettersByReason()
        }))
      ),
    answers: Effect.forEach(viewQueries, (query) =>
      clickhouseRows<Record<string, unknown>>(clickhouse, query.sql).pipe(
        Effect.match({
          onFailure: (unavailable): Answer => ({ ...query, unavailable }),
          onSuccess: (rows): Answer => ({ ...query, rows })
        })
      )),
    lastMessageNumber: Effect.all([
      postgres<{ last: string | null }>`SELECT max(transaction_id) AS last FROM fraud_alerts`,
      clickhouseRows<{ last: string }>(clickhouse, "SELECT max(transaction_id) AS last FROM transaction_records")
    ]).pipe(
      Effect.map(([[inPostgres], [inClickHouse]]) => {
        const numbers = [number(inPostgres?.last), number(inClickHouse?.last)].filter((n) => n !== undefined)
        return numbers.length === 0 ? undefined : Math.max(...numbers)
      })
    )
  }
}
