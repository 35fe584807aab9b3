/**
 * W3C trace context as it travels with Sentinel's data: the `traceparent` header a producer puts on a
 * Kafka record, the one a batch leaves on its outbox rows, and the span links made from them, so
 * that one transaction can be followed from the detector through a batch to the relay.
 *
 * Parsing runs once per record on the hot path: one header lookup, and a regular expression only
 * for records that carry a `traceparent`.
 */
import { Tracer } from "effect"
import type { KafkaRecord } from "../source/KafkaRecord.ts"

/** The identity of a span elsewhere, as a `traceparent` carries it. */
export interface SpanContext {
  readonly traceId: string
  readonly spanId: string
  readonly sampled: boolean
}

/** The header the detector names its correlation id with (the contract, /work/shared/contract.md). */
export const correlationIdHeader = "X-Correlation-ID"

/**
 * Links and correlation ids kept per span, at most. Past these a batch of many producers would
 * weigh more in the trace than its work; the rest are counted instead (OpenTelemetry's default link
 * limit is 128 too).
 */
export const maxLinks = 128
export const maxCorrelationIds = 128

// version "-" trace-id "-" parent-id "-" trace-flags, lower-case hex; a later version may append fields.
const traceparentFormat = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-|$)/
const allZeros = /^0+$/

/** The span a W3C `traceparent` names, or undefined when it is missing or malformed. */
export const parseTraceparent = (value: string | null | undefined): SpanContext | undefined => {
  if (value === null || value === undefined) return undefined
  const match = traceparentFormat.exec(value)
  if (match === null) return undefined
  const [, version, traceId, spanId, flags, rest] = match as unknown as [string, string, string, string, string, string]
  // Version ff is forbidden; version 00 has exactly four fields.
  if (version === "ff" || (version === "00" && rest !== "")) return undefined
  if (allZeros.test(traceId) || allZeros.test(spanId)) return undefined
  return { traceId, spanId, sampled: (parseInt(flags, 16) & 1) === 1 }
}

/** The `traceparent` of a span: version 00, sampled flag as the span was sampled. */
export const formatTraceparent = (span: SpanContext): string =>
  `00-${span.traceId}-${span.spanId}-${span.sampled ? "01" : "00"}`

/** A record's correlation id: the decoded `correlation_id` when it has one, else the detector's header. */
export const correlationIdOf = (record: KafkaRecord, decoded?: string): string | undefined =>
  decoded ?? record.headers[correlationIdHeader]

/** At most `maxLinks` links, one per distinct span, and how many distinct spans were left out. */
export interface Links {
  readonly links: ReadonlyArray<Tracer.SpanLink>
  readonly dropped: number
}

/**
 * One link per distinct span that `items` name through `traceparentOf`, in order of first
 * appearance, with the attributes `describe` gives from the first item naming it and the number of
 * items naming it.
 */
export const linksTo = <A>(
  items: Iterable<A>,
  traceparentOf: (item: A) => string | null | undefined,
  describe: (first: A, count: number) => Readonly<Record<string, unknown>>
): Links => {
  // Keyed by the header as written, so a repeated header is parsed once; and by span, so two spellings
  // of one span (other flags, a later version) make one link.
  const byHeader = new Map<string, { context: SpanContext; first: A; count: number }>()
  const bySpan = new Map<string, { context: SpanContext; first: A; count: number }>()
  for (const item of items) {
    const raw = traceparentOf(item)
    if (raw === undefined || raw === null) continue
    const seen = byHeader.get(raw)
    if (seen !== undefined) {
      seen.count++
      continue
    }
    const context = parseTraceparent(raw)
    if (context === undefined) continue
    const key = context.traceId + context.spanId
    const span = bySpan.get(key) ?? { context, first: item, count: 0 }
    span.count++
    bySpan.set(key, span)
    byHeader.set(raw, span)
  }
  const links: Array<Tracer.SpanLink> = []
  for (const { context, count, first } of bySpan.values()) {
    if (links.length === maxLinks) break
    links.push({ _tag: "SpanLink", span: Tracer.externalSpan(context), attributes: describe(first, count) })
  }
  return { links, dropped: bySpan.size - links.length }
}

/** The distinct correlation ids of a batch, at most `maxCorrelationIds`, and how many more there were. */
export const correlationIds = (
  records: ReadonlyArray<KafkaRecord>,
  decoded: ReadonlyMap<KafkaRecord, string>
): { readonly ids: ReadonlyArray<string>; readonly dropped: number } => {
  const ids = new Set<string>()
  for (const record of records) {
    const id = correlationIdOf(record, decoded.get(record))
    if (id !== undefined) ids.add(id)
  }
  const kept = [...ids].slice(0, maxCorrelationIds)
  return { ids: kept, dropped: ids.size - kept.length }
}
