/**
 * Writes the analytics rows of a batch to ClickHouse — `transaction_records`, `detection_results`
 * (whose materialized views fill `fraud_features` and the rollups) and `performance_metrics` —
 * exactly once, however often a record is replayed.
 *
 * A row's identity is its content (a transaction id; a metric's name, instance, component and
 * time), never its Kafka offset, so a producer retry (same content, new offset) is a duplicate too.
 * Per table and batch:
 *   1. duplicates within the batch are dropped (the first occurrence wins);
 *   2. one query finds the identities already stored, and those rows are dropped — this is what makes
 *      a redelivered, possibly re-batched, replay a no-op. Read-then-write is safe because one
 *      consumer owns a Kafka partition at a time, and an identity always arrives on the same one
 *      (the exception: a transaction sent both inside a detection and on `transaction-records`,
 *      if two instances handle the two at the same moment);
 *   3. the rest is inserted one partition month at a time, each INSERT carrying a token derived
 *      from the identities it holds. A month is one block, so a retry of an INSERT that landed
 *      after all (a timeout, or a read that ran before it landed) is dropped by ClickHouse, in the
 *      table and — with deduplicate_blocks_in_dependent_materialized_views — in its views. When a
 *      batch fails after some months landed, the retry's step 2 finds those and skips them.
 * `SELECT count()` without FINAL is therefore exact.
 *
 * The write is safe to retry as a whole, with the same or a differently split batch.
 */
import type { ClickHouseClient } from "@clickhouse/client"
import { Context, Effect, Layer } from "effect"
import { createHash } from "node:crypto"
import type { DetectionResult, Features, Transaction } from "../../contract/DetectionResult.ts"
import type { PerformanceMetric } from "../../contract/PerformanceMetric.ts"
import type { TransactionRecord } from "../../contract/TransactionRecord.ts"
import type { KafkaRecord } from "../../source/KafkaRecord.ts"
import { withClickHouseInsertSpan } from "../../telemetry/Tracing.ts"
import { ClickHouse } from "./ClickHouse.ts"
import { type ClickHouseWriteError, writeError } from "./ClickHouseError.ts"
import * as Pseudonymisation from "./Pseudonymisation.ts"

export interface AnalyticsBatch {
  /** Detection results of every severity. */
  readonly detections: ReadonlyArray<{ readonly result: DetectionResult; readonly source: KafkaRecord }>
  readonly transactions: ReadonlyArray<{ readonly transaction: TransactionRecord; readonly source: KafkaRecord }>
  readonly metrics: ReadonlyArray<{ readonly metric: PerformanceMetric; readonly source: KafkaRecord }>
}

/**
 * Rows inserted per table. A row whose time is already past its table's TTL is inserted and counted
 * here, but ClickHouse drops it at once: retention is by event time, replays included.
 */
export interface AnalyticsWriteSummary {
  readonly transactionRows: number
  readonly detectionRows: number
  readonly metricRows: number
  /** Rows not written because their identity was already stored or came earlier in the batch. */
  readonly skippedDuplicates: number
}

export interface AnalyticsWriterService {
  readonly write: (batch: AnalyticsBatch) => Effect.Effect<AnalyticsWriteSummary, ClickHouseWriteError>
}

export class AnalyticsWriter
  extends Context.Tag("sentinel/AnalyticsWriter")<AnalyticsWriter, AnalyticsWriterService>()
{}

export interface AnalyticsWriterConfig {
  /**
   * How many of the three tables are written at the same time. Embedded chDB runs one statement at
   * a time anyway; a server takes them in parallel. Default 3.
   */
  readonly concurrency?: number
  /** What user ids become in ClickHouse (SENTINEL_PSEUDONYMISE_KEY). Default: themselves. */
  readonly pseudonymisation?: Pseudonymisation.Pseudonymisation
}

/** A row ready to insert, with the identity that makes it unique in its table. */
interface Row {
  /** The identity columns' values, as ClickHouse prints them. */
  readonly identity: ReadonlyArray<string>
  /** The identity as one string, for sets and the token. */
  readonly key: string
  /** `YYYY-MM`: the partition month, so an INSERT never spans two blocks. */
  readonly month: string
  readonly values: ReadonlyArray<unknown>
}

interface Table {
  readonly name: string
  readonly columns: [string, ...Array<string>]
  /**
   * A query returning the identity tuples of those of `rows` that the table already holds. The
   * identities travel as one JSON text parsed in ClickHouse: a bound Array(String) of thousands of ids
   * costs about twice as much to parse.
   */
  readonly stored: (
    rows: ReadonlyArray<Row>
  ) => { readonly query: string; readonly query_params: Record<string, unknown> }
  /**
   * Completes what a materialized view of this table may lack for rows already stored: a process
   * killed mid-insert can leave the table's part written and the view's not, and a replay then
   * skips those rows as stored. Done inside ClickHouse, for replayed identities only.
   */
  readonly completeViews?: (
    ids: ReadonlyArray<string>
  ) => { readonly query: string; readonly query_params: Record<string, unknown> }
}

const identityKey = (identity: ReadonlyArray<unknown>): string =>
  identity.length === 1 ? String(identity[0]) : JSON.stringify(identity)

const row = (identity: ReadonlyArray<string>, month: string, values: ReadonlyArray<unknown>): Row => ({
  identity,
  key: identityKey(identity),
  month,
  values
})

const kafkaColumns = ["kafka_topic", "kafka_partition", "kafka_offset", "kafka_timestamp"] as const

type Coordinates = readonly [string, number, string, string]

const coordinates = (source: KafkaRecord): Coordinates => [
  source.topic,
  source.partition,
  source.offset, // a decimal string; ClickHouse reads a quoted UInt64
  new Date(source.timestamp).toISOString().slice(0, 23) // DateTime64(3) in UTC, without the `Z`
]

const byTransactionId = (name: string, columns: [string, ...Array<string>]): Table => ({
  name,
  columns,
  stored: (rows) => ({
    query: `SELECT transaction_id FROM ${name} WHERE transaction_id IN JSONExtract({ids:String}, 'Array(String)')`,
    query_params: { ids: JSON.stringify(rows.map((row) => row.key)) }
  })
})

const transactionRecords = byTransactionId("transaction_records", [
  "transaction_id",
  "user_id",
  "transaction_time",
  "amount",
  "merchant_category",
  "payment_method",
  "device_info",
  "location_country",
  "location_state",
  "is_fraud",
  "fraud_score",
  "processing_time_ms",
  ...kafkaColumns
])

const detectionResultsTable = byTransactionId("detection_results", [
  "transaction_id",
  "user_id",
  "transaction_time",
  "severity",
  "fraud_score",
  "is_fraud",
  "ml_prediction",
  "ml_model_version",
  "ml_confidence",
  "business_rules_score",
  "rules_triggered",
  "processing_time_ms",
  "amount_vs_avg_ratio",
  "velocity_score",
  "is_high_amount",
  "is_unusual_hour",
  "is_rapid_transaction",
  "daily_transaction_count",
  "features",
  "correlation_id",
  ...kafkaColumns
])

/** `fraud_features_mv` (clickhouse/0001) again, for replayed results whose features never landed. */
const detectionResults: Table = {
  ...detectionResultsTable,
  completeViews: (ids) => ({
    query: `INSERT INTO fraud_features (transaction_id, user_id, transaction_time, feature_name, feature_value,
                                        kafka_topic, kafka_partition, kafka_offset, kafka_timestamp)
            SELECT d.transaction_id, d.user_id, d.transaction_time, feature_name, feature_value,
                   d.kafka_topic, d.kafka_partition, d.kafka_offset, d.kafka_timestamp
            FROM detection_results AS d
            ARRAY JOIN mapKeys(d.features) AS feature_name, mapValues(d.features) AS feature_value
            WHERE d.transaction_id IN {ids:Array(String)}
              AND d.transaction_id NOT IN (
                SELECT transaction_id FROM fraud_features WHERE transaction_id IN {ids:Array(String)})`,
    query_params: { ids }
  })
}

const performanceMetrics: Table = {
  name: "performance_metrics",
  columns: [
    "metric_time",
    "metric_name",
    "metric_value",
    "component",
    "instance_id",
    "labels",
    ...kafkaColumns
  ],
  stored: (rows) => ({
    query: `SELECT metric_name, instance_id, component, toString(metric_time) FROM performance_metrics
      WHERE (metric_name, instance_id, component, metric_time) IN
        JSONExtract({ids:String}, 'Array(Tuple(String, String, String, DateTime64(6, \\'UTC\\')))')`,
    query_params: { ids: JSON.stringify(rows.map((row) => row.identity)) }
  })
}

/** Decoded times are `YYYY-MM-DDTHH:MM:SS.ffffff` (UTC); ClickHouse prints them with a space. */
const storedTime = (time: string): string => `${time.slice(0, 10)} ${time.slice(11)}`

/** `userId`: the transaction's user id as ClickHouse stores it (Pseudonymisation.ts). */
const transactionRow = (
  transaction: Transaction,
  verdict: Pick<TransactionRecord, "is_fraud" | "fraud_score" | "processing_time_ms">,
  kafka: Coordinates,
  userId: string
): Row =>
  row([transaction.transaction_id], transaction.timestamp.slice(0, 7), [
    transaction.transaction_id,
    userId,
    transaction.timestamp,
    transaction.amount,
    transaction.merchant_category,
    transaction.payment_method,
    transaction.device_info,
    transaction.location_country,
    transaction.location_state,
    verdict.is_fraud,
    verdict.fraud_score,
    verdict.processing_time_ms,
    ...kafka
  ])

/** The numeric and boolean features (booleans as 0/1); string features are columns already. */
const numericFeatures = (features: Features): Record<string, number> => {
  // A plain object: null-prototype ones serialise three times slower.
  const numeric: Record<string, number> = {}
  for (const name in features) {
    const value = features[name]
    const number = typeof value === "number" ? value : typeof value === "boolean" ? Number(value) : undefined
    if (number === undefined) continue
    // Assigning `__proto__` would set the prototype instead of adding the feature.
    if (name === "__proto__") Object.defineProperty(numeric, name, { value: number, enumerable: true })
    else numeric[name] = number
  }
  return numeric
}

const detectionRow = (result: DetectionResult, kafka: Coordinates, userId: string): Row => {
  const { detection_metadata: metadata, explanation, transaction } = result
  return row([transaction.transaction_id], transaction.timestamp.slice(0, 7), [
    transaction.transaction_id,
    userId,
    transaction.timestamp,
    result.severity,
    result.fraud_score,
    result.is_fraud,
    result.ml_prediction ?? metadata.ml_prediction,
    metadata.ml_model_version,
    metadata.ml_confidence,
    metadata.business_rules_score,
    result.business_rules_triggered,
    result.processing_time_ms,
    explanation.amount_vs_avg_ratio,
    explanation.velocity_score,
    explanation.is_high_amount,
    explanation.is_unusual_hour,
    explanation.is_rapid_transaction,
    explanation.daily_transaction_count,
    numericFeatures(result.features),
    result.correlation_id ?? "",
    ...kafka
  ])
}

const metricRow = (metric: PerformanceMetric, kafka: Coordinates): Row =>
  row(
    [metric.metric_name, metric.instance_id, metric.component, storedTime(metric.timestamp)],
    metric.timestamp.slice(0, 7),
    [
      metric.timestamp,
      metric.metric_name,
      metric.metric_value,
      metric.component,
      metric.instance_id,
      metric.labels,
      ...kafka
    ]
  )

/** First occurrence wins. */
const distinct = (rows: ReadonlyArray<Row>): ReadonlyArray<Row> => {
  const seen = new Set<string>()
  return rows.filter((row) => !seen.has(row.key) && seen.add(row.key))
}

const byMonth = (rows: ReadonlyArray<Row>): ReadonlyArray<ReadonlyArray<Row>> => {
  const groups = new Map<string, Array<Row>>()
  for (const row of rows) {
    const group = groups.get(row.month)
    if (group === undefined) groups.set(row.month, [row])
    else group.push(row)
  }
  return [...groups.values()]
}

/** Depends only on the identities in the INSERT, so any retry of it carries the same token. */
const deduplicationToken = (table: string, rows: ReadonlyArray<Row>): string =>
  `${table}:${createHash("sha256").update(rows.map((row) => row.key).sort().join("\n")).digest("base64url")}`

const insertSettings = (token: string) =>
  ({
    insert_deduplicate: 1,
    insert_deduplication_token: token,
    deduplicate_blocks_in_dependent_materialized_views: 1,
    // Token deduplication as relied on here is that of synchronous inserts.
    async_insert: 0
  }) as const

export const make = (config: AnalyticsWriterConfig = {}): Effect.Effect<AnalyticsWriterService, never, ClickHouse> =>
  Effect.gen(function*() {
    const client: ClickHouseClient = yield* ClickHouse
    const { userId } = config.pseudonymisation ?? Pseudonymisation.none

    const storedKeys = (table: Table, rows: ReadonlyArray<Row>) =>
      Effect.tryPromise({
        try: async () => {
          const result = await client.query({
            ...table.stored(rows),
            format: "JSONCompactEachRow",
            // Thousands of ids overflow a URL; over HTTP they then travel in the request body.
            use_multipart_params_auto: true
          })
          return new Set((await result.json<ReadonlyArray<unknown>>()).map(identityKey))
        },
        catch: (cause) => writeError(table.name, cause)
      })

    const insert = (table: Table, rows: ReadonlyArray<Row>) =>
      Effect.tryPromise({
        try: () =>
          client.insert({
            table: table.name,
            columns: table.columns,
            values: rows.map((row) => row.values),
            format: "JSONCompactEachRow",
            clickhouse_settings: insertSettings(deduplicationToken(table.name, rows))
          }),
        catch: (cause) => writeError(table.name, cause)
      }).pipe(withClickHouseInsertSpan(table.name, rows.length))

    const completeViews = (table: Table, ids: ReadonlyArray<string>) =>
      Effect.tryPromise({
        try: () =>
          client.command({
            ...table.completeViews!(ids),
            // Its own token: on chDB the previous insert's would otherwise still be in force.
            clickhouse_settings: insertSettings(
              `${table.name}:views:${createHash("sha256").update([...ids].sort().join("\n")).digest("base64url")}`
            )
          }),
        catch: (cause) => writeError(table.name, cause)
      })

    /** Writes the rows not yet stored; returns how many were written. */
    const writeTable = (table: Table, rows: ReadonlyArray<Row>) =>
      Effect.gen(function*() {
        const candidates = distinct(rows)
        if (candidates.length === 0) return 0
        const stored = yield* storedKeys(table, candidates)
        if (stored.size > 0 && table.completeViews !== undefined) yield* completeViews(table, [...stored])
        const fresh = stored.size === 0 ? candidates : candidates.filter((row) => !stored.has(row.key))
        for (const month of byMonth(fresh)) yield* insert(table, month)
        return fresh.length
      }).pipe(
        Effect.tap((written) => Effect.annotateCurrentSpan({ rows: rows.length, written })),
        Effect.withSpan("AnalyticsWriter.writeTable", { attributes: { table: table.name } })
      )

    const write = (batch: AnalyticsBatch) =>
      Effect.gen(function*() {
        const transactions: Array<Row> = []
        const detections: Array<Row> = []
        for (const { result, source } of batch.detections) {
          const kafka = coordinates(source)
          const user = userId(result.transaction.user_id)
          transactions.push(transactionRow(result.transaction, result, kafka, user))
          detections.push(detectionRow(result, kafka, user))
        }
        for (const { source, transaction } of batch.transactions) {
          transactions.push(transactionRow(transaction, transaction, coordinates(source), userId(transaction.user_id)))
        }
        const metrics = batch.metrics.map(({ metric, source }) => metricRow(metric, coordinates(source)))
        const [transactionRows, detectionRows, metricRows] = yield* Effect.all(
          [
            writeTable(transactionRecords, transactions),
            writeTable(detectionResults, detections),
            writeTable(performanceMetrics, metrics)
          ],
          { concurrency: config.concurrency ?? 3 }
        )
        return {
          transactionRows,
          detectionRows,
          metricRows,
          skippedDuplicates: transactions.length + detections.length + metrics.length -
            (transactionRows + detectionRows + metricRows)
        }
      }).pipe(Effect.withSpan("AnalyticsWriter.write"))

    return AnalyticsWriter.of({ write })
  })

export const layer = (config: AnalyticsWriterConfig = {}): Layer.Layer<AnalyticsWriter, never, ClickHouse> =>
  Layer.effect(AnalyticsWriter, make(config))
