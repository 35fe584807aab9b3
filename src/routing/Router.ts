/**
 * The router stage: decodes every record of a batch against its topic's schema and sends it where
 * it belongs. Detection results go to analytics whatever their severity, and MEDIUM and above also
 * become alerts; anything that cannot be decoded becomes a dead letter with a precise reason, so a
 * bad record never stops the daemon or blocks its partition.
 */
import { Either } from "effect"
import type { Topics } from "../config/Config.ts"
import type { AuditEvent } from "../contract/AuditEvent.ts"
import { decode, type TopicKind } from "../contract/Decode.ts"
import type { DetectionResult, Severity } from "../contract/DetectionResult.ts"
import type { PerformanceMetric } from "../contract/PerformanceMetric.ts"
import type { TransactionRecord } from "../contract/TransactionRecord.ts"
import type { KafkaRecord } from "../source/KafkaRecord.ts"

/** Severities that raise an alert in PostgreSQL (the contract's routing rule). */
export const alertSeverities: ReadonlySet<Severity> = new Set(["MEDIUM", "HIGH", "CRITICAL"])

export interface DeadLetter {
  readonly record: KafkaRecord
  /** `empty`, `not_utf8`, `not_json`, `invalid`, `unknown_topic`, or a sink's rejection. */
  readonly kind: string
  readonly message: string
}

export interface Routed {
  readonly alerts: Array<{ readonly result: DetectionResult; readonly source: KafkaRecord }>
  readonly detections: Array<{ readonly result: DetectionResult; readonly source: KafkaRecord }>
  readonly transactions: Array<{ readonly transaction: TransactionRecord; readonly source: KafkaRecord }>
  readonly metrics: Array<{ readonly metric: PerformanceMetric; readonly source: KafkaRecord }>
  readonly audits: Array<{ readonly event: AuditEvent; readonly source: KafkaRecord }>
  readonly deadLetters: Array<DeadLetter>
}

export const emptyRouted = (): Routed => ({
  alerts: [],
  detections: [],
  transactions: [],
  metrics: [],
  audits: [],
  deadLetters: []
})

export const topicKinds = (topics: Topics): ReadonlyMap<string, TopicKind> =>
  new Map([
    [topics.detections, "detection"],
    [topics.metrics, "metric"],
    [topics.transactions, "transaction"],
    [topics.audits, "audit"]
  ])

/** Routes one record into `into`; returns nothing so a batch is routed without intermediate arrays. */
const routeRecord = (kinds: ReadonlyMap<string, TopicKind>, record: KafkaRecord, into: Routed): void => {
  const kind = kinds.get(record.topic)
  if (kind === undefined) {
    into.deadLetters.push({ record, kind: "unknown_topic", message: `no route for topic ${record.topic}` })
    return
  }
  const decoded = decode(kind, record.value)
  if (Either.isLeft(decoded)) {
    into.deadLetters.push({ record, kind: decoded.left.kind, message: decoded.left.message })
    return
  }
  const message = decoded.right
  switch (message._tag) {
    case "Detection":
      into.detections.push({ result: message.value, source: record })
      if (alertSeverities.has(message.value.severity)) into.alerts.push({ result: message.value, source: record })
      return
    case "Metric":
      into.metrics.push({ metric: message.value, source: record })
      return
    case "Transaction":
      into.transactions.push({ transaction: message.value, source: record })
      return
    case "Audit":
      into.audits.push({ event: message.value, source: record })
      return
  }
}

export const route = (kinds: ReadonlyMap<string, TopicKind>, records: Iterable<KafkaRecord>): Routed => {
  const routed = emptyRouted()
  for (const record of records) routeRecord(kinds, record, routed)
  return routed
}
