/** `performance-metrics`: a measurement the detector reports now and then. */
import { Schema } from "effect"
import { Timestamp } from "./Fields.ts"

export const PerformanceMetric = Schema.Struct({
  timestamp: Timestamp,
  metric_name: Schema.NonEmptyString,
  metric_value: Schema.Finite,
  component: Schema.String,
  instance_id: Schema.String,
  // Python's `str(True)` makes values like "True"; a metric without labels has none.
  labels: Schema.optionalWith(Schema.Record({ key: Schema.String, value: Schema.String }), {
    nullable: true,
    default: () => ({})
  })
}).annotations({ identifier: "PerformanceMetric" })
export type PerformanceMetric = typeof PerformanceMetric.Type
