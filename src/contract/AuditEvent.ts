/** `audit-events`: something done to an entity, for `system_audit_log`. */
import { Schema } from "effect"
import { nullAsAbsent, Timestamp } from "./Fields.ts"

export const AuditEvent = Schema.Struct({
  event_type: Schema.NonEmptyString,
  entity_type: Schema.NonEmptyString,
  entity_id: Schema.NonEmptyString,
  action: Schema.NonEmptyString,
  actor_id: nullAsAbsent(Schema.String),
  details: nullAsAbsent(
    Schema.Record({ key: Schema.String, value: Schema.Unknown }).annotations({ title: "a JSON object" })
  ),
  timestamp: nullAsAbsent(Timestamp)
}).annotations({ identifier: "AuditEvent" })
export type AuditEvent = typeof AuditEvent.Type
