/** `transaction-records`: a flat transaction row, the scored transaction plus the detector's verdict. */
import { Schema } from "effect"
import { Transaction } from "./DetectionResult.ts"
import { FraudScore, ProcessingTimeMs } from "./Fields.ts"

export const TransactionRecord = Schema.Struct({
  ...Transaction.fields,
  is_fraud: Schema.Boolean,
  fraud_score: FraudScore,
  processing_time_ms: ProcessingTimeMs
}).annotations({ identifier: "TransactionRecord" })
export type TransactionRecord = typeof TransactionRecord.Type
