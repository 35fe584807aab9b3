/**
 * `fraud-detection-results`: one message per transaction the detector scored. Field names are the
 * detector's own (snake_case) so the writers map them one to one.
 */
import { Schema } from "effect"
import {
  absentAsNull,
  attempt,
  FraudScore,
  LocationCode,
  nullAsAbsent,
  ProcessingTimeMs,
  readAbsentAsNull,
  readBoolean,
  readFinite,
  readFraudScore,
  readLocationCode,
  readNonEmptyString,
  readNonNegativeInt,
  readObject,
  readProcessingTimeMs,
  readString,
  readStrings,
  readTimestamp,
  reject,
  Timestamp
} from "./Fields.ts"

export const Severity = Schema.Literal("MINIMAL", "LOW", "MEDIUM", "HIGH", "CRITICAL").annotations({
  identifier: "Severity"
})
export type Severity = typeof Severity.Type

/** The scored transaction as the detector saw it. */
export const Transaction = Schema.Struct({
  transaction_id: Schema.NonEmptyString,
  user_id: Schema.NonEmptyString,
  timestamp: Timestamp,
  amount: Schema.Finite,
  merchant_category: Schema.String,
  payment_method: Schema.String,
  device_info: Schema.String,
  location_country: LocationCode,
  location_state: LocationCode
}).annotations({ identifier: "Transaction" })
export type Transaction = typeof Transaction.Type

export const Explanation = Schema.Struct({
  amount_vs_avg_ratio: Schema.Finite,
  velocity_score: Schema.Finite,
  is_high_amount: Schema.Boolean,
  is_unusual_hour: Schema.Boolean,
  is_rapid_transaction: Schema.Boolean,
  daily_transaction_count: Schema.NonNegativeInt
}).annotations({ identifier: "Explanation" })
export type Explanation = typeof Explanation.Type

/**
 * The detector's feature vector (16 keys today). The key set is left open so a new feature never
 * dead-letters a result; the writers turn every numeric or boolean entry into a row.
 */
export const Features = Schema.Record({
  key: Schema.String,
  value: Schema.Union(Schema.String, Schema.Finite, Schema.Boolean)
}).annotations({ identifier: "Features" })
export type Features = typeof Features.Type

export const DetectionMetadata = Schema.Struct({
  ml_model_version: absentAsNull(Schema.String),
  ml_prediction: absentAsNull(Schema.Finite),
  ml_confidence: absentAsNull(Schema.Finite),
  business_rules_score: absentAsNull(Schema.Finite),
  features_used: Schema.Array(Schema.String),
  model_features: Features
}).annotations({ identifier: "DetectionMetadata" })
export type DetectionMetadata = typeof DetectionMetadata.Type

export const DetectionResult = Schema.Struct({
  transaction: Transaction,
  is_fraud: Schema.Boolean,
  fraud_score: FraudScore,
  severity: Severity,
  ml_prediction: absentAsNull(Schema.Finite),
  business_rules_triggered: Schema.Array(Schema.String),
  processing_time_ms: ProcessingTimeMs,
  explanation: Explanation,
  features: Features,
  detection_metadata: DetectionMetadata,
  correlation_id: nullAsAbsent(Schema.String)
}).annotations({ identifier: "DetectionResult" })
export type DetectionResult = typeof DetectionResult.Type

// ---------------------------------------------------------------------------------------------------
// The hot path: field for field the schemas above (see Fields.ts for why it exists).

const readTransaction = (value: unknown): Transaction => {
  const transaction = readObject(value)
  return {
    transaction_id: readNonEmptyString(transaction.transaction_id),
    user_id: readNonEmptyString(transaction.user_id),
    timestamp: readTimestamp(transaction.timestamp),
    amount: readFinite(transaction.amount),
    merchant_category: readString(transaction.merchant_category),
    payment_method: readString(transaction.payment_method),
    device_info: readString(transaction.device_info),
    location_country: readLocationCode(transaction.location_country),
    location_state: readLocationCode(transaction.location_state)
  }
}

const readExplanation = (value: unknown): Explanation => {
  const explanation = readObject(value)
  return {
    amount_vs_avg_ratio: readFinite(explanation.amount_vs_avg_ratio),
    velocity_score: readFinite(explanation.velocity_score),
    is_high_amount: readBoolean(explanation.is_high_amount),
    is_unusual_hour: readBoolean(explanation.is_unusual_hour),
    is_rapid_transaction: readBoolean(explanation.is_rapid_transaction),
    daily_transaction_count: readNonNegativeInt(explanation.daily_transaction_count)
  }
}

const readFeatures = (value: unknown): Features => {
  const features = readObject(value)
  for (const key in features) {
    const feature = features[key]
    if (typeof feature !== "string" && typeof feature !== "boolean") readFinite(feature)
  }
  // Checked in place: the parsed object is the decoded record, no copy needed.
  return features as Features
}

const readDetectionMetadata = (value: unknown): DetectionMetadata => {
  const metadata = readObject(value)
  return {
    ml_model_version: readAbsentAsNull(readString, metadata.ml_model_version),
    ml_prediction: readAbsentAsNull(readFinite, metadata.ml_prediction),
    ml_confidence: readAbsentAsNull(readFinite, metadata.ml_confidence),
    business_rules_score: readAbsentAsNull(readFinite, metadata.business_rules_score),
    features_used: readStrings(metadata.features_used),
    model_features: readFeatures(metadata.model_features)
  }
}

const severities: ReadonlySet<unknown> = new Set(Severity.literals)

const readSeverity = (value: unknown): Severity => severities.has(value) ? value as Severity : reject()

const readResult = (value: unknown): DetectionResult => {
  const result = readObject(value)
  const decoded: DetectionResult = {
    transaction: readTransaction(result.transaction),
    is_fraud: readBoolean(result.is_fraud),
    fraud_score: readFraudScore(result.fraud_score),
    severity: readSeverity(result.severity),
    ml_prediction: readAbsentAsNull(readFinite, result.ml_prediction),
    business_rules_triggered: readStrings(result.business_rules_triggered),
    processing_time_ms: readProcessingTimeMs(result.processing_time_ms),
    explanation: readExplanation(result.explanation),
    features: readFeatures(result.features),
    detection_metadata: readDetectionMetadata(result.detection_metadata)
  }
  return result.correlation_id === undefined || result.correlation_id === null
    ? decoded
    : { ...decoded, correlation_id: readString(result.correlation_id) }
}

/** What decoding with `DetectionResult` gives for a valid message, or undefined: ask the schema why not. */
export const readDetectionResult = (json: unknown): DetectionResult | undefined => attempt(readResult, json)
