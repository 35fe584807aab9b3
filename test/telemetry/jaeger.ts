/**
 * Reading traces back from the stack's Jaeger through its query APIs: v1 (`/api/traces`, spans with
 * `references`, where an OTLP link shows as FOLLOWS_FROM) and v3 (`/api/v3/traces/<id>`, OTLP JSON,
 * where links keep their attributes).
 */
import { stackEnv } from "../support/services.ts"

export interface JaegerTag {
  readonly key: string
  readonly type: string
  readonly value: unknown
}

export interface JaegerSpan {
  readonly traceID: string
  readonly spanID: string
  readonly operationName: string
  readonly references: ReadonlyArray<{ readonly refType: string; readonly traceID: string; readonly spanID: string }>
  readonly tags: ReadonlyArray<JaegerTag>
  readonly logs: ReadonlyArray<{ readonly timestamp: number; readonly fields: ReadonlyArray<JaegerTag> }>
  readonly processID: string
}

export interface JaegerTrace {
  readonly traceID: string
  readonly spans: ReadonlyArray<JaegerSpan>
  readonly processes: Readonly<
    Record<string, { readonly serviceName: string; readonly tags: ReadonlyArray<JaegerTag> }>
  >
}

const queryUrl = () => stackEnv().JAEGER_QUERY_URL!

/** Every trace of `service` (with a span named `operation`, if given) in the last hour. */
export const tracesOf = async (service: string, operation?: string): Promise<ReadonlyArray<JaegerTrace>> => {
  const query = new URLSearchParams({ service, limit: "5000", lookback: "1h" })
  if (operation !== undefined) query.set("operation", operation)
  const response = await fetch(`${queryUrl()}/api/traces?${query}`)
  // An unknown service is a 200 with no data, or an error while Jaeger has not seen it yet.
  if (!response.ok) return []
  return ((await response.json()) as { data: ReadonlyArray<JaegerTrace> | null }).data ?? []
}

export const traceById = async (traceId: string): Promise<JaegerTrace | undefined> => {
  const response = await fetch(`${queryUrl()}/api/traces/${traceId}`)
  if (!response.ok) return undefined
  return ((await response.json()) as { data: ReadonlyArray<JaegerTrace> }).data[0]
}

export const tag = (span: JaegerSpan, key: string): unknown => span.tags.find((t) => t.key === key)?.value

export const parentOf = (span: JaegerSpan): string | undefined =>
  span.references.find((reference) => reference.refType === "CHILD_OF")?.spanID

export const linksOf = (span: JaegerSpan) => span.references.filter((reference) => reference.refType === "FOLLOWS_FROM")

/** The spans of a trace below `root`, at any depth. */
export const descendants = (trace: JaegerTrace, root: JaegerSpan): ReadonlyArray<JaegerSpan> => {
  const below: Array<JaegerSpan> = []
  const parents = new Set([root.spanID])
  let grown = true
  while (grown) {
    grown = false
    for (const span of trace.spans) {
      const parent = parentOf(span)
      if (parent !== undefined && parents.has(parent) && !parents.has(span.spanID)) {
        parents.add(span.spanID)
        below.push(span)
        grown = true
      }
    }
  }
  return below
}

type OtlpValue = { readonly stringValue?: string; readonly intValue?: string; readonly boolValue?: boolean }

export interface OtlpLink {
  readonly traceId: string
  readonly spanId: string
  readonly attributes: Readonly<Record<string, string | number | boolean | undefined>>
}

/** The links of every span of a trace, by span id, with their attributes (v3 API). */
export const linksWithAttributes = async (traceId: string): Promise<ReadonlyMap<string, ReadonlyArray<OtlpLink>>> => {
  const response = await fetch(`${queryUrl()}/api/v3/traces/${traceId}`)
  if (!response.ok) throw new Error(`Jaeger v3 API: ${response.status} ${await response.text()}`)
  const body = (await response.json()) as {
    result: {
      resourceSpans: ReadonlyArray<{
        scopeSpans: ReadonlyArray<{
          spans: ReadonlyArray<{
            spanId: string
            links?: ReadonlyArray<
              { traceId: string; spanId: string; attributes?: ReadonlyArray<{ key: string; value: OtlpValue }> }
            >
          }>
        }>
      }>
    }
  }
  const links = new Map<string, ReadonlyArray<OtlpLink>>()
  for (const { scopeSpans } of body.result.resourceSpans) {
    for (const { spans } of scopeSpans) {
      for (const span of spans) {
        links.set(
          span.spanId,
          (span.links ?? []).map((link) => ({
            traceId: link.traceId,
            spanId: link.spanId,
            attributes: Object.fromEntries(
              (link.attributes ?? []).map(({ key, value }) => [
                key,
                value.stringValue ?? (value.intValue === undefined ? value.boolValue : Number(value.intValue))
              ])
            )
          }))
        )
      }
    }
  }
  return links
}
