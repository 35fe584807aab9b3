/**
 * `fraud-detection-results`: one message per transaction the detector scored. Field names are the
 * detector's own (snake_case) so the writers map them one to one.
 */
import { Schema } from "effect"
import { absentAsNull, FraudScore, LocationCode, nullAsAbsent, ProcessingTimeMs, Timestamp } from "./Fields.ts"

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
