import type { ClickHouseClient } from "@clickhouse/client"
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "@effect/vitest"
import { Effect, Schema } from "effect"
import { DetectionResult } from "../../../src/contract/DetectionResult.ts"
import { PerformanceMetric } from "../../../src/contract/PerformanceMetric.ts"
import { TransactionRecord } from "../../../src/contract/TransactionRecord.ts"
import {
  type AnalyticsBatch,
  type AnalyticsWriterConfig,
  type AnalyticsWriterService,
  make
} from "../../../src/sinks/clickhouse/AnalyticsWriter.ts"
import { ClickHouse, makeClient } from "../../../src/sinks/clickhouse/ClickHouse.ts"
import { migrateClickHouse } from "../../../src/sinks/clickhouse/Migrations.ts"
import type { KafkaRecord } from "../../../src/source/KafkaRecord.ts"
import { freshClickHousePath } from "../../support/services.ts"

// chDB allows one data folder per process: this file's tests share one client, in order, and each
// test uses transaction ids of its own (the deduplication tokens derive from them).
let client: ClickHouseClient

beforeAll(async () => {
  client = makeClient({ _tag: "Embedded", path: freshClickHousePath() })
  // Fixtures carry fixed dates; TTLs long enough that none has expired on the day the tests run.
  await Effect.runPromise(migrateClickHouse(client, { analyticsTtlDays: 10_000, metricsTtlDays: 10_000 }))
})

afterAll(() => client.close())

const dataTables = [
  "transaction_records",
  "detection_results",
  "fraud_features",
  "performance_metrics",
  "fraud_rate_hourly",
  "user_activity_daily",
  "model_predictions_hourly",
  "ground_truth_labels"
]

beforeEach(async () => {
  for (const table of dataTables) await client.command({ query: `TRUNCATE TABLE ${table}` })
})

const writerOn = (on: ClickHouseClient, config: AnalyticsWriterConfig = {}): AnalyticsWriterService =>
  Effect.runSync(make(config).pipe(Effect.provideService(ClickHouse, on)))

const write = (batch: Partial<AnalyticsBatch>, on: ClickHouseClient = client) =>
  Effect.runPromise(writerOn(on).write({ detections: [], transactions: [], metrics: [], ...batch }))

/** Rows as JSON, 64-bit integers as numbers (servers quote them by default, chDB does not). */
const rows = async <T = Record<string, unknown>>(query: string): Promise<Array<T>> =>
  (await client.query({
    query,
    format: "JSONEachRow",
    clickhouse_settings: { output_format_json_quote_64bit_integers: 0 }
  }))
    .json<T>()

// ---- fixtures: wire messages as the detector sends them, decoded by the contract ----------------

const recordTime = Date.UTC(2026, 3, 16, 14, 0, 0, 123)

const kafkaRecord = (topic: string, partition: number, offset: number, key: string): KafkaRecord => ({
  topic,
  partition,
  offset: String(offset),
  timestamp: recordTime + offset,
  key,
  headers: {},
  value: null
})

interface Scored {
  readonly id: string
  readonly user: string
  readonly time: string
  readonly score: number
  readonly amount?: number
  /** The ML model's version; null when the detector ran rules only. Default "v1". */
  readonly model?: string | null
}

const severityOf = (score: number) =>
  score >= 0.9 ? "CRITICAL" : score >= 0.8 ? "HIGH" : score >= 0.6 ? "MEDIUM" : score >= 0.4 ? "LOW" : "MINIMAL"

const decodeDetection = Schema.decodeUnknownSync(DetectionResult)
const decodeTransaction = Schema.decodeUnknownSync(TransactionRecord)
const decodeMetric = Schema.decodeUnknownSync(PerformanceMetric)

type Detection = AnalyticsBatch["detections"][number]

const detection = (scored: Scored, offset: number, partition = 0): Detection => {
  const amount = scored.amount ?? 100
  const model = scored.model === undefined ? "v1" : scored.model
  const features = {
    user_id: scored.user,
    transaction_id: scored.id,
    amount,
    amount_vs_avg_ratio: 1.25,
    daily_amount_total: amount * 2,
    time_since_last_transaction: 3600.5,
    amount_vs_last_ratio: 0.8,
    velocity_score: 0.1,
    fraud_score: scored.score,
    transaction_hour: 14,
    transaction_day: 3,
    daily_transaction_count: 2,
    is_high_amount: scored.score > 0.5,
    is_unusual_hour: false,
    is_rapid_transaction: true,
    is_fraud_alert: scored.score >= 0.3
  }
  const result = decodeDetection({
    transaction: {
      transaction_id: scored.id,
      user_id: scored.user,
      timestamp: scored.time,
      amount,
      merchant_category: "electronics",
      payment_method: "credit_card",
      device_info: "unknown",
      location_country: 150.0,
      location_state: 12.5
    },
    is_fraud: scored.score >= 0.3,
    fraud_score: scored.score,
    severity: severityOf(scored.score),
    ml_prediction: model === null ? null : scored.score,
    business_rules_triggered: scored.score >= 0.6 ? ["high_amount_transaction", "amount_deviation_high"] : [],
    processing_time_ms: 14,
    explanation: {
      amount_vs_avg_ratio: 1.25,
      velocity_score: 0.1,
      is_high_amount: scored.score > 0.5,
      is_unusual_hour: false,
      is_rapid_transaction: true,
      daily_transaction_count: 2
    },
    features,
    detection_metadata: {
      ml_model_version: model,
      ml_prediction: model === null ? null : scored.score,
      ml_confidence: model === null ? null : 0.9,
      business_rules_score: model === null ? scored.score : null,
      features_used: Object.keys(features),
      model_features: features
    },
    correlation_id: `corr-${scored.id}`
  })
  return { result, source: kafkaRecord("fraud-detection-results", partition, offset, scored.user) }
}

const flatTransaction = (scored: Scored, offset: number): AnalyticsBatch["transactions"][number] => ({
  transaction: decodeTransaction({
    transaction_id: scored.id,
    user_id: scored.user,
    timestamp: scored.time,
    amount: scored.amount ?? 100,
    merchant_category: "grocery",
    payment_method: "debit_card",
    device_info: "mobile",
    location_country: "DE",
    location_state: "BE",
    is_fraud: scored.score >= 0.3,
    fraud_score: scored.score,
    processing_time_ms: 9.5
  }),
  source: kafkaRecord("transaction-records", 1, offset, scored.id)
})

const metric = (
  fields: { instance: string; time: string; name?: string; value?: number },
  offset: number
): AnalyticsBatch["metrics"][number] => ({
  metric: decodeMetric({
    timestamp: fields.time,
    metric_name: fields.name ?? "fraud_detection_processing_time",
    metric_value: fields.value ?? 12.5,
    component: "fraud_detector",
    instance_id: fields.instance,
    labels: { ml_enabled: "True" }
  }),
  source: kafkaRecord("performance-metrics", 2, offset, fields.instance)
})

/** `count` detections of ids `<prefix>0000000000…`, one a minute from `start`, scores cycling. */
const detections = (prefix: string, count: number, start = Date.UTC(2026, 3, 16, 14)): Array<Detection> =>
  Array.from({ length: count }, (_, i) =>
    detection(
      {
        id: `${prefix}${String(i).padStart(10, "0")}`,
        user: `U${i % 7}`,
        time: `${new Date(start + i * 60_000).toISOString().slice(0, 19)}.418233`,
        score: [0.05, 0.35, 0.45, 0.65, 0.85, 0.95][i % 6]!,
        amount: 10 + i,
        model: i % 5 === 0 ? null : "v1"
      },
      1_000 + i,
      i % 3
    ))

/** Producer retries: the same messages at new offsets. */
const atNewOffsets = (batch: ReadonlyArray<Detection>, shift: number): Array<Detection> =>
  batch.map(({ result, source }) => ({
    result,
    source: { ...source, offset: String(Number(source.offset) + shift), timestamp: source.timestamp + shift }
  }))

const numericFeatureCount = (result: DetectionResult): number =>
  Object.values(result.features).filter((value) => typeof value !== "string").length

/** Every table and view total, read without FINAL. */
const snapshot = async () => {
  const [row] = await rows<Record<string, number>>(`SELECT
      (SELECT count() FROM transaction_records) AS transaction_records,
      (SELECT count() FROM detection_results) AS detection_results,
      (SELECT count() FROM fraud_features) AS fraud_features,
      (SELECT count() FROM performance_metrics) AS performance_metrics,
      (SELECT sum(transactions) FROM fraud_rate_hourly) AS hourly_transactions,
      (SELECT sum(flagged) FROM fraud_rate_hourly) AS hourly_flagged,
      (SELECT sum(alerts) FROM fraud_rate_hourly) AS hourly_alerts,
      (SELECT sum(transactions) FROM user_activity_daily) AS daily_transactions,
      (SELECT sum(alerts) FROM user_activity_daily) AS daily_alerts,
      (SELECT sum(predictions) FROM model_predictions_hourly) AS predictions`)
  return row!
}

// ---- clients that misbehave on purpose --------------------------------------------------------

const withMethod = (name: "query" | "insert", method: (...args: Array<never>) => Promise<unknown>): ClickHouseClient =>
  new Proxy(client, {
    get: (target, key) => {
      if (key === name) return method
      const value: unknown = Reflect.get(target, key)
      return typeof value === "function" ? value.bind(target) : value
    }
  })

/** Every identity lookup answers "nothing stored yet", as a read racing an insert in flight would. */
const staleReads = () =>
  withMethod(
    "query",
    (params: { format: "JSONCompactEachRow" }) => client.query({ query: "SELECT 1 WHERE 0", format: params.format })
  )

const connectionReset = () => Object.assign(new Error("socket hang up"), { code: "ECONNRESET" })

/** The `nth` INSERT into `table` fails with a reset connection — after it landed, when `landed`. */
const failingInsert = (table: string, nth: number, landed: boolean) => {
  let seen = 0
  return withMethod("insert", async (params: Parameters<ClickHouseClient["insert"]>[0]) => {
    if (params.table === table && ++seen === nth) {
      if (landed) await client.insert(params)
      throw connectionReset()
    }
    return client.insert(params)
  })
}

// ---- tests -------------------------------------------------------------------------------------

describe("AnalyticsWriter", () => {
  it("writes a batch with exact counts in every table, fraud_features and the views", async () => {
    const batch = detections("A", 60)
    const duplicate = flatTransaction(
      { id: "A0000000003", user: "U3", time: "2026-04-16T14:03:00.418233", score: 0.1 },
      7
    )
    const flat = [0, 1, 2, 3, 4].map((i) =>
      flatTransaction({ id: `AF${i}`, user: "U9", time: `2026-04-16T15:0${i}:00.000001`, score: 0.05 * i }, 10 + i)
    )
    const samples = [
      metric({ instance: "det-1", time: "2026-04-16T14:00:00.000001" }, 1),
      metric({ instance: "det-1", time: "2026-04-16T14:00:00.000001" }, 2), // producer retry
      metric({ instance: "det-1", time: "2026-04-16T14:00:00.000002" }, 3),
      metric({ instance: "det-2", time: "2026-04-16T14:00:00.000001", name: "fraud_detection_throughput" }, 4)
    ]

    const summary = await write({ detections: batch, transactions: [duplicate, ...flat], metrics: samples })

    expect(summary).toEqual({ transactionRows: 65, detectionRows: 60, metricRows: 3, skippedDuplicates: 2 })
    const features = batch.reduce((sum, { result }) => sum + numericFeatureCount(result), 0)
    expect(features).toBe(60 * 14)
    const flagged = batch.filter(({ result }) => result.is_fraud).length +
      flat.filter(({ transaction }) => transaction.is_fraud).length
    const alerts = batch.filter(({ result }) => ["MEDIUM", "HIGH", "CRITICAL"].includes(result.severity)).length
    expect(await snapshot()).toEqual({
      transaction_records: 65,
      detection_results: 60,
      fraud_features: features,
      performance_metrics: 3,
      hourly_transactions: 65,
      hourly_flagged: flagged,
      hourly_alerts: alerts,
      daily_transactions: 65,
      daily_alerts: alerts,
      predictions: 60
    })
  })

  it("stores each field as decoded, with the Kafka coordinates of its record", async () => {
    const [mlMode, rulesMode] = [
      detection({ id: "C1", user: "UC", time: "2026-04-16T14:22:07.418233", score: 0.83 }, 41, 4),
      detection({ id: "C2", user: "UC", time: "2026-04-16T14:22:08.000000", score: 0.2, model: null }, 42, 4)
    ]
    await write({
      detections: [mlMode!, rulesMode!],
      metrics: [metric({ instance: "det-1", time: "2026-04-16T14:00:00.500000" }, 9)]
    })

    expect(await rows("SELECT * FROM detection_results WHERE transaction_id = 'C1'")).toEqual([{
      transaction_id: "C1",
      user_id: "UC",
      transaction_time: "2026-04-16 14:22:07.418233",
      severity: "HIGH",
      fraud_score: 0.83,
      is_fraud: true,
      ml_prediction: 0.83,
      ml_model_version: "v1",
      ml_confidence: 0.9,
      business_rules_score: null,
      rules_triggered: ["high_amount_transaction", "amount_deviation_high"],
      processing_time_ms: 14,
      amount_vs_avg_ratio: 1.25,
      velocity_score: 0.1,
      is_high_amount: true,
      is_unusual_hour: false,
      is_rapid_transaction: true,
      daily_transaction_count: 2,
      features: {
        amount: 100,
        amount_vs_avg_ratio: 1.25,
        daily_amount_total: 200,
        time_since_last_transaction: 3600.5,
        amount_vs_last_ratio: 0.8,
        velocity_score: 0.1,
        fraud_score: 0.83,
        transaction_hour: 14,
        transaction_day: 3,
        daily_transaction_count: 2,
        is_high_amount: 1,
        is_unusual_hour: 0,
        is_rapid_transaction: 1,
        is_fraud_alert: 1
      },
      correlation_id: "corr-C1",
      label_is_fraud: null,
      kafka_topic: "fraud-detection-results",
      kafka_partition: 4,
      kafka_offset: 41,
      kafka_timestamp: "2026-04-16 14:00:00.164"
    }])
    expect(
      await rows(
        "SELECT ml_prediction, ml_model_version, ml_confidence, business_rules_score FROM detection_results WHERE transaction_id = 'C2'"
      )
    )
      .toEqual([{ ml_prediction: null, ml_model_version: null, ml_confidence: null, business_rules_score: 0.2 }])
    expect(
      await rows(
        "SELECT location_country, location_state, processing_time_ms, kafka_offset FROM transaction_records WHERE transaction_id = 'C1'"
      )
    )
      .toEqual([{ location_country: "150", location_state: "12.5", processing_time_ms: 14, kafka_offset: 41 }])
    expect(
      await rows(
        "SELECT feature_name, feature_value, kafka_offset FROM fraud_features WHERE transaction_id = 'C1' AND feature_name IN ('amount', 'is_fraud_alert') ORDER BY feature_name"
      )
    )
      .toEqual([{ feature_name: "amount", feature_value: 100, kafka_offset: 41 }, {
        feature_name: "is_fraud_alert",
        feature_value: 1,
        kafka_offset: 41
      }])
    expect(
      await rows("SELECT metric_time, labels, kafka_topic, kafka_partition, kafka_offset FROM performance_metrics")
    )
      .toEqual([{
        metric_time: "2026-04-16 14:00:00.500000",
        labels: { ml_enabled: "True" },
        kafka_topic: "performance-metrics",
        kafka_partition: 2,
        kafka_offset: 9
      }])
  })

  it("leaves every count unchanged under replay: redelivered, re-batched, or retried by the producer", async () => {
    const batch = detections("B", 90)
    const flat = [flatTransaction({ id: "BF1", user: "U1", time: "2026-04-16T16:00:00.000000", score: 0.4 }, 5)]
    const samples = [metric({ instance: "det-1", time: "2026-04-16T14:00:00.000000" }, 20)]
    await write({ detections: batch, transactions: flat, metrics: samples })
    const once = await snapshot()
    expect(once).toMatchObject({ transaction_records: 91, detection_results: 90, performance_metrics: 1 })

    // Redelivery after a crash: the same batch again.
    expect(await write({ detections: batch, transactions: flat, metrics: samples })).toEqual({
      transactionRows: 0,
      detectionRows: 0,
      metricRows: 0,
      skippedDuplicates: 90 + 91 + 1
    })
    // The same records batched differently, out of order, together with their own duplicates.
    await write({ detections: batch.slice(50).reverse(), transactions: flat })
    await write({ detections: [...batch.slice(0, 7), ...batch.slice(0, 7)] })
    await write({ detections: batch.slice(7, 50), metrics: samples })
    // A producer's retry: the same content at other offsets.
    await write({
      detections: atNewOffsets(batch, 10_000),
      metrics: [metric({ instance: "det-1", time: "2026-04-16T14:00:00.000000" }, 21)]
    })
    expect(await snapshot()).toEqual(once)

    // A batch half replayed, half new writes only the new half.
    const next = detections("B2", 30)
    expect(await write({ detections: [...batch.slice(0, 30), ...next] })).toMatchObject({
      detectionRows: 30,
      transactionRows: 30,
      skippedDuplicates: 60
    })
    const after = await snapshot()
    expect(after).toMatchObject({
      transaction_records: 121,
      detection_results: 120,
      fraud_features: 120 * 14,
      hourly_transactions: 121,
      daily_transactions: 121,
      predictions: 120
    })
  })

  it("completes fraud_features on replay when a killed insert left a result without its features", async () => {
    const batch = detections("K", 20)
    await write({ detections: batch })
    // What a process killed between the table's part and the view's part leaves behind.
    await client.command({
      query: "ALTER TABLE fraud_features DELETE WHERE transaction_id IN {ids:Array(String)}",
      query_params: { ids: batch.slice(0, 5).map((d) => d.result.transaction.transaction_id) },
      clickhouse_settings: { mutations_sync: "2" }
    })
    expect((await snapshot()).fraud_features).toBe(15 * 14)

    // The redelivery skips the stored results, and completes their features once.
    await write({ detections: batch })
    await write({ detections: batch })
    const after = await snapshot()
    expect(after).toMatchObject({ detection_results: 20, fraud_features: 20 * 14 })
  })

  it("drops a repeated INSERT by its token, in the tables and in every view", async () => {
    // Both writes see "nothing stored", as when a retry's read ran before the first insert landed.
    const batch = detections("D", 40)
    const samples = [metric({ instance: "det-9", time: "2026-04-16T14:00:00.000000" }, 1)]
    await write({ detections: batch, metrics: samples }, staleReads())
    const once = await snapshot()
    expect(once).toMatchObject({ detection_results: 40, fraud_features: 40 * 14, hourly_transactions: 40 })

    await write({ detections: batch, metrics: samples }, staleReads())
    await write({ detections: atNewOffsets(batch, 500), metrics: samples }, staleReads())
    expect(await snapshot()).toEqual(once)
  })

  it("completes a two-month batch that failed half-way without doubling anything", async () => {
    // The batch straddles a partition boundary: January's rows and February's are separate inserts.
    const batch = detections("M", 40, Date.UTC(2026, 0, 31, 23, 40))
    expect(new Set(batch.map(({ result }) => result.transaction.timestamp.slice(0, 7)))).toEqual(
      new Set(["2026-01", "2026-02"])
    )

    // February's detection insert lands, but the client sees the connection drop. One table at a time:
    // otherwise the failure abandons a transaction insert still running in chDB, which may land after
    // the retry looked, and the retry's count (not its rows: the token drops them) would depend on timing.
    const landed = await Effect.runPromise(Effect.flip(
      writerOn(failingInsert("detection_results", 2, true), { concurrency: 1 }).write({
        detections: batch,
        transactions: [],
        metrics: []
      })
    ))
    expect(landed).toMatchObject({
      _tag: "ClickHouseWriteError",
      table: "detection_results",
      classification: "transient",
      code: "ECONNRESET"
    })
    expect(await write({ detections: batch })).toEqual({
      transactionRows: 0,
      detectionRows: 0,
      metricRows: 0,
      skippedDuplicates: 80
    })

    const complete = await snapshot()
    expect(complete).toMatchObject({
      transaction_records: 40,
      detection_results: 40,
      fraud_features: 40 * 14,
      hourly_transactions: 40,
      daily_transactions: 40,
      predictions: 40
    })

    // The same again, but February's insert never lands: the retry writes exactly February.
    await client.command({ query: "TRUNCATE TABLE detection_results" })
    for (const table of ["fraud_features", "fraud_rate_hourly", "user_activity_daily", "model_predictions_hourly"]) {
      await client.command({ query: `TRUNCATE TABLE ${table}` })
    }
    await client.command({ query: "TRUNCATE TABLE transaction_records" })
    const next = detections("N", 40, Date.UTC(2026, 0, 31, 23, 40))
    await Effect.runPromise(Effect.flip(
      writerOn(failingInsert("detection_results", 2, false), { concurrency: 1 }).write({
        detections: next,
        transactions: [],
        metrics: []
      })
    ))
    const january = next.filter(({ result }) => result.transaction.timestamp.startsWith("2026-01")).length
    expect(await rows("SELECT count() AS n FROM detection_results")).toEqual([{ n: january }])
    expect(await write({ detections: next })).toEqual({
      transactionRows: 0,
      detectionRows: 40 - january,
      metricRows: 0,
      skippedDuplicates: 40 + january
    })
    expect(await snapshot()).toEqual(complete)
  })

  it("fails with a permanent error when ClickHouse refuses the data, and a transient one when the network fails", async () => {
    const [good] = detections("E", 1)
    const unreadable = {
      ...good!,
      result: { ...good!.result, transaction: { ...good!.result.transaction, timestamp: "yesterday" } }
    }
    const refused = await Effect.runPromise(
      Effect.flip(writerOn(client).write({ detections: [unreadable], transactions: [], metrics: [] }))
    )
    expect(refused).toMatchObject({ _tag: "ClickHouseWriteError", classification: "permanent", code: "41" })

    const down = await Effect.runPromise(Effect.flip(
      writerOn(withMethod("query", () => Promise.reject(connectionReset()))).write({
        detections: [good!],
        transactions: [],
        metrics: []
      })
    ))
    expect(down).toMatchObject({ _tag: "ClickHouseWriteError", classification: "transient", code: "ECONNRESET" })
    expect(await snapshot()).toMatchObject({ transaction_records: 0, detection_results: 0 })
  })
})

describe("materialized views on known data", () => {
  // 2026-03-10 09:00 — E1..E4; 10:00 — E5, E6 and the flat F1; 2026-03-11 09:00 — E7.
  const known = {
    E1: { id: "V-E1", user: "UA", time: "2026-03-10T09:05:00.000001", score: 0.1, amount: 10, model: "v1" },
    E2: { id: "V-E2", user: "UA", time: "2026-03-10T09:20:00.000000", score: 0.5, amount: 20, model: "v1" },
    E3: { id: "V-E3", user: "UB", time: "2026-03-10T09:40:00.000000", score: 0.7, amount: 30, model: "v2" },
    E4: { id: "V-E4", user: "UB", time: "2026-03-10T09:59:59.999999", score: 0.95, amount: 40, model: "v2" },
    E5: { id: "V-E5", user: "UA", time: "2026-03-10T10:00:00.000000", score: 0.2, amount: 50, model: null },
    E6: { id: "V-E6", user: "UA", time: "2026-03-10T10:30:00.000000", score: 0.85, amount: 60, model: "v1" },
    E7: { id: "V-E7", user: "UB", time: "2026-03-11T09:15:00.000000", score: 0.65, amount: 70, model: "v1" }
  } satisfies Record<string, Scored>
  const F1 = { id: "V-F1", user: "UA", time: "2026-03-10T10:45:00.000000", score: 0.05, amount: 5 }

  // Two batches, so the views hold several parts that only sum()/max() combine.
  const writeKnown = async () => {
    await write({ detections: [known.E1, known.E3, known.E5, known.E7].map((s, i) => detection(s, 100 + i)) })
    await write({
      detections: [known.E2, known.E4, known.E6].map((s, i) => detection(s, 200 + i)),
      transactions: [flatTransaction(F1, 300)]
    })
  }

  it("fraud_rate_hourly: transactions, flagged, alerts and average score per hour", async () => {
    await writeKnown()
    const hourly = await rows(`
      SELECT r.hour AS hour,
             sum(r.transactions) AS transactions,
             sum(r.flagged) AS flagged,
             sum(r.alerts) AS alerts,
             sum(r.flagged) / sum(r.transactions) AS fraud_rate,
             sum(r.fraud_score_sum) / sum(r.transactions) AS avg_fraud_score
      FROM fraud_rate_hourly AS r
      GROUP BY hour ORDER BY hour`)
    expect(hourly).toEqual([
      {
        hour: "2026-03-10 09:00:00",
        transactions: 4,
        flagged: 3,
        alerts: 2,
        fraud_rate: 0.75,
        avg_fraud_score: expect.closeTo(0.5625, 9)
      },
      {
        hour: "2026-03-10 10:00:00",
        transactions: 3,
        flagged: 1,
        alerts: 1,
        fraud_rate: expect.closeTo(1 / 3, 9),
        avg_fraud_score: expect.closeTo(1.1 / 3, 9)
      },
      {
        hour: "2026-03-11 09:00:00",
        transactions: 1,
        flagged: 1,
        alerts: 1,
        fraud_rate: 1,
        avg_fraud_score: expect.closeTo(0.65, 9)
      }
    ])
  })

  it("user_activity_daily: transactions, amount, highest score and alerts per user and day", async () => {
    await writeKnown()
    const daily = await rows(`
      SELECT u.user_id AS user_id, u.day AS day,
             sum(u.transactions) AS transactions,
             sum(u.amount_sum) AS amount,
             max(u.max_fraud_score) AS max_fraud_score,
             sum(u.alerts) AS alerts
      FROM user_activity_daily AS u
      GROUP BY user_id, day ORDER BY user_id, day`)
    expect(daily).toEqual([
      { user_id: "UA", day: "2026-03-10", transactions: 5, amount: 145, max_fraud_score: 0.85, alerts: 1 },
      { user_id: "UB", day: "2026-03-10", transactions: 2, amount: 70, max_fraud_score: 0.95, alerts: 2 },
      { user_id: "UB", day: "2026-03-11", transactions: 1, amount: 70, max_fraud_score: 0.65, alerts: 1 }
    ])
  })

  it("model_accuracy_hourly: predictions against ground truth, labelled late or when written", async () => {
    await writeKnown()
    // A backfilled detection that arrived already labelled (a false positive of v2).
    await client.insert({
      table: "detection_results",
      values: [{
        transaction_id: "V-E8",
        user_id: "UB",
        transaction_time: "2026-03-11 09:30:00.000000",
        severity: "HIGH",
        fraud_score: 0.8,
        is_fraud: true,
        ml_model_version: "v2",
        label_is_fraud: 0,
        kafka_topic: "backfill",
        kafka_partition: 0,
        kafka_offset: 1,
        kafka_timestamp: "2026-03-12 00:00:00.000"
      }],
      format: "JSONEachRow",
      // chDB keeps settings for the session: an INSERT without a token of its own would reuse the last one.
      clickhouse_settings: { insert_deduplication_token: "test:backfill:V-E8" }
    })
    // Labels arrive later, one INSERT at a time: E2 is relabelled, E3's label is sent twice, E4 has
    // none, and E8's late label loses to the one it was written with.
    const labels: Array<[string, number, string]> = [
      ["V-E1", 0, "2026-03-20 00:00:00.000"],
      ["V-E2", 1, "2026-03-20 00:00:00.000"],
      ["V-E2", 0, "2026-03-25 00:00:00.000"],
      ["V-E3", 1, "2026-03-20 00:00:00.000"],
      ["V-E3", 1, "2026-03-21 00:00:00.000"],
      ["V-E5", 1, "2026-03-20 00:00:00.000"],
      ["V-E6", 1, "2026-03-20 00:00:00.000"],
      ["V-E8", 1, "2026-03-20 00:00:00.000"]
    ]
    for (const [index, [transaction_id, label_is_fraud, labeled_at]] of labels.entries()) {
      await client.insert({
        table: "ground_truth_labels",
        values: [{ transaction_id, label_is_fraud, labeled_at, label_source: "chargeback" }],
        format: "JSONEachRow",
        clickhouse_settings: { insert_deduplication_token: `test:label:${index}` }
      })
    }

    const accuracy = await rows(`
      SELECT m.hour AS hour, m.model_version AS model_version, m.predictions AS predictions,
             m.predicted_fraud AS predicted_fraud, m.labeled AS labeled,
             m.true_positives AS true_positives, m.false_positives AS false_positives,
             m.true_negatives AS true_negatives, m.false_negatives AS false_negatives,
             (m.true_positives + m.true_negatives) / nullIf(m.labeled, 0) AS accuracy
      FROM model_accuracy_hourly AS m
      ORDER BY hour, model_version`)
    const row = (hour: string, model_version: string, counts: Array<number>, accuracy: number | null) => {
      const [predictions, predicted_fraud, labeled, tp, fp, tn, fn] = counts
      return {
        hour,
        model_version,
        predictions,
        predicted_fraud,
        labeled,
        true_positives: tp,
        false_positives: fp,
        true_negatives: tn,
        false_negatives: fn,
        accuracy
      }
    }
    expect(accuracy).toEqual([
      row("2026-03-10 09:00:00", "v1", [2, 1, 2, 0, 1, 1, 0], 0.5),
      row("2026-03-10 09:00:00", "v2", [2, 2, 1, 1, 0, 0, 0], 1),
      row("2026-03-10 10:00:00", "", [1, 0, 1, 0, 0, 0, 1], 0),
      row("2026-03-10 10:00:00", "v1", [1, 1, 1, 1, 0, 0, 0], 1),
      row("2026-03-11 09:00:00", "v1", [1, 1, 0, 0, 0, 0, 0], null),
      row("2026-03-11 09:00:00", "v2", [1, 1, 1, 0, 1, 0, 0], 0)
    ])
  })
})
