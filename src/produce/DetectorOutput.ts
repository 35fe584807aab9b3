/**
 * What the Python fraud detector publishes, made up deterministically from a seed: the same seed and
 * options give byte-for-byte the same messages. `sentinel produce` sends these for tests, the demo and
 * the benchmark, and each planned message says what Sentinel must make of it.
 */
import type { AuditEvent } from "../contract/AuditEvent.ts"
import type { DecodeFailure, TopicKind } from "../contract/Decode.ts"
import type { DetectionResult, Severity } from "../contract/DetectionResult.ts"
import type { PerformanceMetric } from "../contract/PerformanceMetric.ts"
import type { TransactionRecord } from "../contract/TransactionRecord.ts"

// ---------------------------------------------------------------------------------------------------
// Randomness

/** A uniform draw in [0, 1). */
export type Rng = () => number

/** mulberry32: tiny, fast and good enough for test data; not for anything secret. */
export const seededRng = (seed: number): Rng => {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const uniform = (rng: Rng, low: number, high: number): number => low + (high - low) * rng()

/** An integer in [low, high]. */
const integer = (rng: Rng, low: number, high: number): number => low + Math.floor(rng() * (high - low + 1))

const pick = <A>(rng: Rng, items: ReadonlyArray<A>): A => items[Math.floor(rng() * items.length)]!

const chance = (rng: Rng, probability: number): boolean => rng() < probability

/** Box–Muller; one of the pair is dropped to keep the stream simple. */
const gaussian = (rng: Rng): number => Math.sqrt(-2 * Math.log(1 - rng())) * Math.cos(2 * Math.PI * rng())

const logNormal = (rng: Rng, median: number, sigma: number): number => median * Math.exp(sigma * gaussian(rng))

const weighted = <A>(rng: Rng, weights: ReadonlyArray<readonly [A, number]>): A => {
  let draw = rng() * weights.reduce((sum, [, weight]) => sum + weight, 0)
  for (const [item, weight] of weights) {
    draw -= weight
    if (draw < 0) return item
  }
  return weights[weights.length - 1]![0]
}

const hex = (rng: Rng, digits: number): string => {
  let text = ""
  while (text.length < digits) text += Math.floor(rng() * 0x100000000).toString(16).padStart(8, "0")
  return text.slice(0, digits)
}

/** Shaped like Python's `str(uuid.uuid4())`, which is what the detector uses for correlation ids. */
const uuid4 = (rng: Rng): string => {
  const h = hex(rng, 32)
  const variant = "89ab"[parseInt(h[16]!, 16) & 3]!
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-${variant}${h.slice(17, 20)}-${h.slice(20)}`
}

const cents = (amount: number): number => Math.round(amount * 100) / 100

// ---------------------------------------------------------------------------------------------------
// The wire format

// Python writes a float that happens to be whole as `150.0`; JSON.stringify would write `150`. These
// keys hold Python floats in the detector's messages, so they are written the Python way.
const pythonFloatKeys: ReadonlySet<string> = new Set([
  "amount",
  "fraud_score",
  "ml_prediction",
  "ml_confidence",
  "business_rules_score",
  "location_country",
  "location_state",
  "amount_vs_avg_ratio",
  "daily_amount_total",
  "time_since_last_transaction",
  "amount_vs_last_ratio",
  "velocity_score",
  "metric_value"
])

// Printable ASCII but `"` and `\`: written as it is, which is nearly every string and key.
const needsNoEscape = /^[ !#-[\]-~]*$/
const nonAscii = /[\u0080-\uffff]/g

// Python's default ensure_ascii escapes everything beyond ASCII.
const pythonString = (text: string): string =>
  needsNoEscape.test(text)
    ? `"${text}"`
    : JSON.stringify(text).replace(nonAscii, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`)

// Plain loops and concatenation: a 200,000-record plan spends most of its time here.
const pythonValue = (value: unknown, isFloat: boolean): string => {
  if (value === null) return "null"
  switch (typeof value) {
    case "string":
      return pythonString(value)
    case "boolean":
      return value ? "true" : "false"
    case "number":
      return isFloat && Number.isInteger(value) && Math.abs(value) < 1e16 ? `${value}.0` : String(value)
    case "object": {
      if (Array.isArray(value)) {
        let text = "["
        for (let i = 0; i < value.length; i++) text += (i === 0 ? "" : ", ") + pythonValue(value[i], isFloat)
        return `${text}]`
      }
      const fields = value as { readonly [key: string]: unknown }
      let text = "{"
      for (const key in fields) {
        const field = fields[key]
        if (field === undefined) continue
        text += (text.length === 1 ? "" : ", ") + pythonString(key) + ": " +
          pythonValue(field, pythonFloatKeys.has(key))
      }
      return `${text}}`
    }
    default:
      throw new TypeError(`not a JSON value: ${typeof value}`)
  }
}

/** A JSON value as Python's `json.dumps` with default settings writes it: `", "` and `": "`, ASCII only. */
export const pythonJson = (value: unknown): string => pythonValue(value, false)

// ---------------------------------------------------------------------------------------------------
// Messages, typed as the contract's wire form so that the compiler holds them to it

export type DetectionResultWire = typeof DetectionResult.Encoded
export type PerformanceMetricWire = typeof PerformanceMetric.Encoded
export type TransactionRecordWire = typeof TransactionRecord.Encoded
export type AuditEventWire = typeof AuditEvent.Encoded

export interface GeneratorOptions {
  /** Share of detection results at MEDIUM or higher, i.e. the ones that become alerts. Default 0.20. */
  readonly alertShare?: number
  /** Share of detection results scored by rules only (ML fields null). Default 0.15. */
  readonly rulesOnlyShare?: number
  /**
   * When message 0 happened; message n is about n seconds later. Default 2026-04-16T08:00:00. Pass
   * the present when the data must outlive the stores' retention (TTL) for a while.
   */
  readonly start?: Date
}

const defaultStart = new Date(Date.UTC(2026, 3, 16, 8, 0, 0))

// The shares of the default mix: 80% below MEDIUM split 55:25, 20% alerts split 10:7:3.
const quietMix: ReadonlyArray<readonly [Severity, number]> = [["MINIMAL", 55], ["LOW", 25]]
const alertMix: ReadonlyArray<readonly [Severity, number]> = [["MEDIUM", 10], ["HIGH", 7], ["CRITICAL", 3]]

/** The detector's thresholds: [lowest score, first score above] per severity. */
const scoreBand: Record<Severity, readonly [number, number]> = {
  MINIMAL: [0, 0.4],
  LOW: [0.4, 0.6],
  MEDIUM: [0.6, 0.8],
  HIGH: [0.8, 0.9],
  CRITICAL: [0.9, 1]
}

const userCount = 5000

const merchantCategories = [
  "grocery",
  "gas_station",
  "restaurant",
  "online_retail",
  "electronics",
  "travel",
  "entertainment",
  "pharmacy",
  "jewelry",
  "gambling"
] as const
const paymentMethods = ["credit_card", "debit_card", "paypal", "bank_transfer", "apple_pay", "google_pay"] as const
const devices = ["mobile_ios", "mobile_android", "desktop_chrome", "desktop_safari", "tablet"] as const
// The detector forwards location codes from a float column, hence numbers; a few producers send ISO codes.
const countryCodes = [840, 124, 826, 276, 250, 150, 36, 392, 76, 484] as const
const countryNames = ["US", "CA", "GB", "DE", "FR"] as const
const stateNames = ["CA", "NY", "TX", "ON", "BY", "IDF"] as const
const modelVersions = ["fraud_model_v2.3.1", "fraud_model_v2.4.0"] as const

/** The 16 features the detector computes, in its order. */
export const featureKeys = [
  "user_id",
  "transaction_id",
  "amount",
  "amount_vs_avg_ratio",
  "daily_amount_total",
  "time_since_last_transaction",
  "amount_vs_last_ratio",
  "velocity_score",
  "fraud_score",
  "transaction_hour",
  "transaction_day",
  "daily_transaction_count",
  "is_high_amount",
  "is_unusual_hour",
  "is_rapid_transaction",
  "is_fraud_alert"
] as const

// The model reads every feature but the two identifiers.
const featuresUsed = featureKeys.filter((key) => key !== "user_id" && key !== "transaction_id")

const highAmount = 1000
const rapidSeconds = 300

/** The detector's timestamp for message n: local time without a zone, with microseconds. */
const timestampOf = (rng: Rng, n: number, start: Date): { readonly text: string; readonly at: Date } => {
  const micros = start.getTime() * 1000 + n * 1_000_000 + integer(rng, 0, 999_999)
  const at = new Date(Math.floor(micros / 1000))
  return { text: `${at.toISOString().slice(0, 19)}.${String(micros % 1_000_000).padStart(6, "0")}`, at }
}

const transactionIdOf = (n: number): string => `T${String(n).padStart(10, "0")}`

const userNumberOf = (rng: Rng): number => integer(rng, 1, userCount)

const userIdOf = (userNumber: number): string => `U${String(userNumber).padStart(5, "0")}`

/** A user's usual spend, fixed per user so that ratios to it mean something across messages. */
const usualAmountOf = (userNumber: number): number => {
  const hash = Math.imul(userNumber ^ 0x5bd1e995, 0x27d4eb2d) >>> 0
  return 20 + (hash % 280)
}

const locationOf = (rng: Rng): readonly [string | number, string | number] =>
  chance(rng, 0.9) ? [pick(rng, countryCodes), integer(rng, 1, 56)] : [pick(rng, countryNames), pick(rng, stateNames)]

const severityOf = (rng: Rng, alertShare: number): Severity =>
  chance(rng, alertShare) ? weighted(rng, alertMix) : weighted(rng, quietMix)

/** A score inside the severity's band; scores below LOW lean towards zero, as real traffic does. */
const scoreOf = (rng: Rng, severity: Severity): number => {
  const [low, high] = scoreBand[severity]
  return severity === "MINIMAL" ? high * rng() ** 2 : uniform(rng, low, high)
}

/** Everything the detector works out about one transaction; messages are views of it. */
const scoredTransaction = (rng: Rng, n: number, options: GeneratorOptions) => {
  const severity = severityOf(rng, options.alertShare ?? 0.2)
  const fraudScore = scoreOf(rng, severity)
  // A riskier transaction shows more warning signs; each sign is what one rule looks at.
  const sign = () => chance(rng, 0.04 + 0.6 * fraudScore)
  const userNumber = userNumberOf(rng)
  const { at, text: timestamp } = timestampOf(rng, n, options.start ?? defaultStart)
  const hour = at.getUTCHours()
  const amount = cents(
    sign() ? highAmount + logNormal(rng, 900, 0.8) : Math.min(logNormal(rng, 45, 1), highAmount - 0.01)
  )
  const timeSinceLast = sign() ? uniform(rng, 2, rapidSeconds) : rapidSeconds + logNormal(rng, 14_400, 1.2)
  const velocityScore = sign() ? uniform(rng, 0.8, 1) : uniform(rng, 0, 0.6)
  const dailyCount = sign() ? integer(rng, 21, 45) : integer(rng, 1, 12)
  const usualAmount = usualAmountOf(userNumber)
  const [country, state] = locationOf(rng)
  const transaction: DetectionResultWire["transaction"] = {
    transaction_id: transactionIdOf(n),
    user_id: userIdOf(userNumber),
    timestamp,
    amount,
    merchant_category: pick(rng, merchantCategories),
    payment_method: pick(rng, paymentMethods),
    device_info: chance(rng, 0.6) ? "unknown" : pick(rng, devices),
    location_country: country,
    location_state: state
  }
  return {
    transaction,
    severity,
    fraudScore,
    isFraud: fraudScore >= 0.3,
    processingTimeMs: Math.round(logNormal(rng, 9, 0.5)) + 1,
    hour,
    day: (at.getUTCDay() + 6) % 7,
    amountVsAvgRatio: amount / usualAmount,
    amountVsLastRatio: amount / logNormal(rng, usualAmount, 0.6),
    dailyAmountTotal: cents(amount + (dailyCount - 1) * usualAmount * uniform(rng, 0.5, 1.5)),
    timeSinceLast,
    velocityScore,
    dailyCount,
    isHighAmount: amount > highAmount,
    isUnusualHour: hour < 6 || hour >= 23,
    isRapid: timeSinceLast < rapidSeconds
  }
}

type ScoredTransaction = ReturnType<typeof scoredTransaction>

/** The detector's rules, each with the warning sign that fires it. */
const rules: ReadonlyArray<readonly [name: string, fires: (scored: ScoredTransaction) => boolean]> = [
  ["high_amount_transaction", (scored) => scored.isHighAmount],
  ["unusual_hour_transaction", (scored) => scored.isUnusualHour],
  ["rapid_transaction_velocity", (scored) => scored.isRapid],
  ["amount_deviation_high", (scored) => scored.amountVsAvgRatio > 3],
  ["high_velocity_user", (scored) => scored.velocityScore > 0.8],
  ["excessive_daily_transactions", (scored) => scored.dailyCount > 20]
]

const ruleNames = rules.map(([name]) => name)

/** A `fraud-detection-results` message as the detector sends it for message number n. */
export const detectionResult = (rng: Rng, n: number, options: GeneratorOptions = {}): DetectionResultWire => {
  const scored = scoredTransaction(rng, n, options)
  const rulesOnly = chance(rng, options.rulesOnlyShare ?? 0.15)
  const mlPrediction = rulesOnly ? null : Math.min(1, Math.max(0, scored.fraudScore + 0.05 * gaussian(rng)))
  const features: DetectionResultWire["features"] = {
    user_id: scored.transaction.user_id,
    transaction_id: scored.transaction.transaction_id,
    amount: scored.transaction.amount,
    amount_vs_avg_ratio: scored.amountVsAvgRatio,
    daily_amount_total: scored.dailyAmountTotal,
    time_since_last_transaction: scored.timeSinceLast,
    amount_vs_last_ratio: scored.amountVsLastRatio,
    velocity_score: scored.velocityScore,
    fraud_score: scored.fraudScore,
    transaction_hour: scored.hour,
    transaction_day: scored.day,
    daily_transaction_count: scored.dailyCount,
    is_high_amount: scored.isHighAmount,
    is_unusual_hour: scored.isUnusualHour,
    is_rapid_transaction: scored.isRapid,
    is_fraud_alert: scored.isFraud
  }
  const message: DetectionResultWire = {
    transaction: scored.transaction,
    is_fraud: scored.isFraud,
    fraud_score: scored.fraudScore,
    severity: scored.severity,
    ml_prediction: mlPrediction,
    business_rules_triggered: rules.filter(([, fires]) => fires(scored)).map(([name]) => name),
    processing_time_ms: scored.processingTimeMs,
    explanation: {
      amount_vs_avg_ratio: scored.amountVsAvgRatio,
      velocity_score: scored.velocityScore,
      is_high_amount: scored.isHighAmount,
      is_unusual_hour: scored.isUnusualHour,
      is_rapid_transaction: scored.isRapid,
      daily_transaction_count: scored.dailyCount
    },
    features,
    detection_metadata: {
      ml_model_version: rulesOnly ? null : pick(rng, modelVersions),
      ml_prediction: mlPrediction,
      ml_confidence: mlPrediction === null ? null : 0.5 + Math.abs(mlPrediction - 0.5),
      business_rules_score: rulesOnly ? scored.fraudScore : null,
      features_used: featuresUsed,
      model_features: features
    }
  }
  return chance(rng, 0.3) ? { ...message, correlation_id: uuid4(rng) } : message
}

/** A flat `transaction-records` row for message number n. */
export const transactionRecord = (rng: Rng, n: number, options: GeneratorOptions = {}): TransactionRecordWire => {
  const scored = scoredTransaction(rng, n, options)
  return {
    ...scored.transaction,
    is_fraud: scored.isFraud,
    fraud_score: scored.fraudScore,
    processing_time_ms: scored.processingTimeMs
  }
}

const instanceIds = ["fraud-detector-1", "fraud-detector-2", "fraud-detector-3"] as const

const metricKinds: ReadonlyArray<readonly [string, string, (rng: Rng) => number]> = [
  ["fraud_detection_processing_time", "fraud_detector", (rng) => logNormal(rng, 9, 0.5)],
  ["fraud_detection_throughput", "fraud_detector", (rng) => logNormal(rng, 180, 0.3)],
  ["ml_model_inference_time", "ml_model", (rng) => logNormal(rng, 4, 0.4)]
]

/** A `performance-metrics` message for message number n. */
export const performanceMetric = (rng: Rng, n: number, options: GeneratorOptions = {}): PerformanceMetricWire => {
  const [metricName, component, value] = pick(rng, metricKinds)
  const mlEnabled = !chance(rng, options.rulesOnlyShare ?? 0.15)
  return {
    timestamp: timestampOf(rng, n, options.start ?? defaultStart).text,
    metric_name: metricName,
    metric_value: value(rng),
    component,
    instance_id: pick(rng, instanceIds),
    labels: mlEnabled
      ? { ml_enabled: "True", model_version: pick(rng, modelVersions) }
      : { ml_enabled: "False" }
  }
}

const auditKinds: ReadonlyArray<
  readonly [eventType: string, entityType: string, action: string, entityId: (rng: Rng, n: number) => string]
> = [
  ["USER_STATUS_CHANGED", "user", "BLOCK", (rng) => userIdOf(userNumberOf(rng))],
  ["USER_STATUS_CHANGED", "user", "UNBLOCK", (rng) => userIdOf(userNumberOf(rng))],
  ["ALERT_REVIEWED", "fraud_alert", "RESOLVE", (rng, n) => transactionIdOf(integer(rng, 0, n))],
  ["RULE_UPDATED", "business_rule", "UPDATE", (rng) => pick(rng, ruleNames)],
  ["MODEL_DEPLOYED", "ml_model", "DEPLOY", (rng) => pick(rng, modelVersions)]
]

/** An `audit-events` message for message number n; its optional fields come and go as Python's `None` would. */
export const auditEvent = (rng: Rng, n: number, options: GeneratorOptions = {}): AuditEventWire => {
  const [eventType, entityType, action, entityIdOf] = pick(rng, auditKinds)
  const event: AuditEventWire = {
    event_type: eventType,
    entity_type: entityType,
    entity_id: entityIdOf(rng, n),
    action,
    actor_id: chance(rng, 0.7) ? `analyst_${String(integer(rng, 1, 40)).padStart(2, "0")}` : null
  }
  const details = chance(rng, 0.6) ? { reason: pick(rng, ["manual_review", "customer_request", "policy"]) } : null
  return chance(rng, 0.8)
    ? { ...event, details, timestamp: timestampOf(rng, n, options.start ?? defaultStart).text }
    : { ...event, details }
}

// ---------------------------------------------------------------------------------------------------
// Malformed payloads

export type FailureKind = DecodeFailure["kind"]

export interface MalformedPayload {
  readonly bytes: Buffer
  readonly expectedKind: FailureKind
  /** For `invalid`: the field the decoder must name (as it writes paths), when there is one. */
  readonly field?: string
}

const utf8 = (text: string): Buffer => Buffer.from(text, "utf8")

const without = <A extends object, K extends keyof A>(value: A, key: K): Omit<A, K> => {
  const { [key]: _, ...rest } = value
  return rest
}

const inTransaction =
  (edit: (transaction: DetectionResultWire["transaction"]) => unknown) => (message: DetectionResultWire) => ({
    ...message,
    transaction: edit(message.transaction)
  })

// Each edit breaks one field of a valid detection result, the way real producers get it wrong.
const invalidEdits: ReadonlyArray<readonly [field: string, edit: (message: DetectionResultWire) => unknown]> = [
  ["severity", (m) => ({ ...m, severity: "SEVERE" })],
  ["severity", (m) => ({ ...m, severity: "critical" })],
  ["severity", (m) => without(m, "severity")],
  ["fraud_score", (m) => ({ ...m, fraud_score: "high" })],
  ["fraud_score", (m) => ({ ...m, fraud_score: 1.7 })],
  ["is_fraud", (m) => ({ ...m, is_fraud: "true" })],
  ["business_rules_triggered", (m) => ({ ...m, business_rules_triggered: "high_amount_transaction" })],
  ["features", (m) => ({ ...m, features: null })],
  ["transaction", (m) => without(m, "transaction")],
  ["detection_metadata", (m) => without(m, "detection_metadata")],
  [
    "explanation.daily_transaction_count",
    (m) => ({ ...m, explanation: without(m.explanation, "daily_transaction_count") })
  ],
  ["transaction.amount", inTransaction((t) => ({ ...t, amount: "12.50" }))],
  ["transaction.transaction_id", inTransaction((t) => ({ ...t, transaction_id: "" }))],
  ["transaction.user_id", inTransaction((t) => without(t, "user_id"))],
  ["transaction.location_country", inTransaction((t) => ({ ...t, location_country: [150] }))],
  ["transaction.timestamp", inTransaction((t) => ({ ...t, timestamp: "2026-13-45T25:61:00.000000" }))],
  ["transaction.timestamp", inTransaction((t) => ({ ...t, timestamp: "2026-02-30T10:00:00.000000" }))],
  ["transaction.timestamp", inTransaction((t) => ({ ...t, timestamp: "16/04/2026 14:22:07" }))]
]

const malformedKinds: ReadonlyArray<(rng: Rng, n: number) => MalformedPayload> = [
  () => ({ bytes: Buffer.alloc(0), expectedKind: "empty" }),
  (rng, n) => {
    // Latin-1 text or a stray byte inside an otherwise valid message.
    const text = pythonJson(detectionResult(rng, n))
    const at = text.indexOf("\"merchant_category\": \"") + 22
    const junk = pick(rng, [[0xe9], [0xff], [0xc3, 0x28], [0xed, 0xa0, 0x80]])
    return {
      bytes: Buffer.concat([utf8(text.slice(0, at)), Buffer.from(junk), utf8(text.slice(at))]),
      expectedKind: "not_utf8"
    }
  },
  (rng, n) => ({
    // Python's str(dict) instead of json.dumps, or a log line on the wrong topic.
    bytes: utf8(
      chance(rng, 0.5)
        ? `{'transaction_id': '${transactionIdOf(n)}', 'is_fraud': True, 'fraud_score': 0.93}`
        : `scored ${transactionIdOf(n)} in 12ms`
    ),
    expectedKind: "not_json"
  }),
  (rng, n) => {
    const text = pythonJson(detectionResult(rng, n))
    return { bytes: utf8(text.slice(0, integer(rng, 1, text.length - 1))), expectedKind: "not_json" }
  },
  (rng) => ({ bytes: utf8(pick(rng, ["null", "[]", "\"ok\"", "42"])), expectedKind: "invalid" }),
  (rng, n) => {
    const [field, edit] = pick(rng, invalidEdits)
    return { bytes: utf8(pythonJson(edit(detectionResult(rng, n)))), expectedKind: "invalid", field }
  }
]

/** A payload that is not a valid `fraud-detection-results` message, with the failure it must cause. */
export const malformed = (rng: Rng, n: number): MalformedPayload =>
  // Broken fields are the common case in practice; the other kinds still come up regularly.
  chance(rng, 0.5) ? malformedKinds[malformedKinds.length - 1]!(rng, n) : pick(rng, malformedKinds)(rng, n)

// ---------------------------------------------------------------------------------------------------
// A production plan

export interface TopicMix {
  readonly detection: number
  readonly metric: number
  readonly transaction: number
  readonly audit: number
}

export interface PlanOptions extends GeneratorOptions {
  /** Records to produce, re-sent duplicates included. */
  readonly count: number
  /** The number of the first message (its transaction id, its time): plans that follow one another stay distinct. Default 0. */
  readonly first?: number
  readonly seed?: number
  /** Share of records that are malformed detection results. Default 0.01. */
  readonly malformedShare?: number
  /** Share of records that re-send an earlier detection result unchanged, as a retrying producer does. Default 0.01. */
  readonly duplicateShare?: number
  /** Share of records carrying a W3C `traceparent` header. Default 0.5. */
  readonly traceShare?: number
  /** Relative weights of the topics among valid records. Default 94:3:2:1. */
  readonly mix?: TopicMix
}

export const defaultMix: TopicMix = { detection: 94, metric: 3, transaction: 2, audit: 1 }

/** What Sentinel must make of a planned record. */
export type Expected =
  | { readonly kind: "malformed"; readonly failure: FailureKind }
  | {
    readonly kind: "detection"
    readonly transactionId: string
    readonly userId: string
    readonly severity: Severity
    /** A re-send of an earlier record: it must change nothing. */
    readonly duplicate: boolean
  }
  | { readonly kind: "metric"; readonly metricName: string }
  | { readonly kind: "transaction"; readonly transactionId: string }
  | { readonly kind: "audit"; readonly entityId: string }

export interface PlannedMessage {
  readonly topic: TopicKind
  readonly key: string
  readonly value: Buffer
  readonly headers: Readonly<Record<string, string>>
  readonly expected: Expected
}

/** Removes and returns a random item of a non-empty array, in constant time (order does not matter). */
const takeAny = <A>(rng: Rng, items: Array<A>): A => {
  const index = Math.floor(rng() * items.length)
  const item = items[index]!
  items[index] = items[items.length - 1]!
  items.pop()
  return item
}

// How far back a retry may reach; bounds the memory a 200,000-record plan holds.
const retryWindow = 1000

/**
 * The records to produce, lazily. Record i is message number i, so transaction ids are unique
 * across the plan except in re-sent duplicates, which repeat an earlier record exactly.
 */
export function* plan(options: PlanOptions): Generator<PlannedMessage, void, undefined> {
  const rng = seededRng(options.seed ?? 1)
  const mix = options.mix ?? defaultMix
  const topics: ReadonlyArray<readonly [TopicKind, number]> = [
    ["detection", mix.detection],
    ["metric", mix.metric],
    ["transaction", mix.transaction],
    ["audit", mix.audit]
  ]
  const headersFor = (correlationId: string): Record<string, string> =>
    chance(rng, options.traceShare ?? 0.5)
      ? { "X-Correlation-ID": correlationId, traceparent: `00-${hex(rng, 32)}-${hex(rng, 16)}-01` }
      : { "X-Correlation-ID": correlationId }
  const retryable: Array<PlannedMessage & { readonly expected: Extract<Expected, { kind: "detection" }> }> = []
  // Selection sampling: exactly round(count × share) re-sends, spread over the plan.
  let resendsLeft = Math.round(options.count * (options.duplicateShare ?? 0.01))
  const first = options.first ?? 0
  for (let i = 0; i < options.count; i++) {
    const n = first + i
    if (retryable.length > 0 && chance(rng, resendsLeft / (options.count - i))) {
      resendsLeft--
      const original = takeAny(rng, retryable)
      yield { ...original, expected: { ...original.expected, duplicate: true } }
      continue
    }
    if (chance(rng, options.malformedShare ?? 0.01)) {
      const payload = malformed(rng, n)
      yield {
        topic: "detection",
        key: userIdOf(userNumberOf(rng)),
        value: payload.bytes,
        headers: headersFor(uuid4(rng)),
        expected: { kind: "malformed", failure: payload.expectedKind }
      }
      continue
    }
    const topic = weighted(rng, topics)
    const planned = plannedMessage(rng, n, topic, options, headersFor)
    const { expected } = planned
    if (expected.kind === "detection") {
      // A full window forgets a random record: that one is never retried.
      if (retryable.length === retryWindow) retryable[Math.floor(rng() * retryWindow)] = { ...planned, expected }
      else retryable.push({ ...planned, expected })
    }
    yield planned
  }
}

const plannedMessage = (
  rng: Rng,
  n: number,
  topic: TopicKind,
  options: GeneratorOptions,
  headersFor: (correlationId: string) => Record<string, string>
): PlannedMessage => {
  switch (topic) {
    case "detection": {
      const message = detectionResult(rng, n, options)
      return {
        topic,
        key: message.transaction.user_id,
        value: utf8(pythonJson(message)),
        headers: headersFor(message.correlation_id ?? uuid4(rng)),
        expected: {
          kind: "detection",
          transactionId: message.transaction.transaction_id,
          userId: message.transaction.user_id,
          severity: message.severity,
          duplicate: false
        }
      }
    }
    case "metric": {
      const message = performanceMetric(rng, n, options)
      return {
        topic,
        key: message.instance_id,
        value: utf8(pythonJson(message)),
        headers: headersFor(uuid4(rng)),
        expected: { kind: "metric", metricName: message.metric_name }
      }
    }
    case "transaction": {
      const message = transactionRecord(rng, n, options)
      return {
        topic,
        key: message.transaction_id,
        value: utf8(pythonJson(message)),
        headers: headersFor(uuid4(rng)),
        expected: { kind: "transaction", transactionId: message.transaction_id }
      }
    }
    case "audit": {
      const message = auditEvent(rng, n, options)
      return {
        topic,
        key: message.entity_id,
        value: utf8(pythonJson(message)),
        headers: headersFor(uuid4(rng)),
        expected: { kind: "audit", entityId: message.entity_id }
      }
    }
  }
}

/** What a plan must leave behind, counted. */
export interface PlanTally {
  readonly records: number
  readonly malformed: Record<FailureKind, number>
  /** Distinct detection results by severity; re-sends are not counted again. */
  readonly detections: Record<Severity, number>
  /** MEDIUM, HIGH and CRITICAL results among `detections`: the alerts. */
  readonly alerts: number
  readonly duplicates: number
  readonly metrics: number
  readonly transactions: number
  readonly audits: number
}

export const tally = (messages: Iterable<{ readonly expected: Expected }>): PlanTally => {
  const malformedCounts: Record<FailureKind, number> = { empty: 0, not_utf8: 0, not_json: 0, invalid: 0 }
  const detections: Record<Severity, number> = { MINIMAL: 0, LOW: 0, MEDIUM: 0, HIGH: 0, CRITICAL: 0 }
  let records = 0
  let duplicates = 0
  let metrics = 0
  let transactions = 0
  let audits = 0
  for (const { expected } of messages) {
    records++
    switch (expected.kind) {
      case "malformed":
        malformedCounts[expected.failure]++
        break
      case "detection":
        if (expected.duplicate) duplicates++
        else detections[expected.severity]++
        break
      case "metric":
        metrics++
        break
      case "transaction":
        transactions++
        break
      case "audit":
        audits++
        break
    }
  }
  return {
    records,
    malformed: malformedCounts,
    detections,
    alerts: detections.MEDIUM + detections.HIGH + detections.CRITICAL,
    duplicates,
    metrics,
    transactions,
    audits
  }
}
