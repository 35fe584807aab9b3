/**
 * Turns a record's raw value into a message of its topic, or says precisely why it cannot: this is
 * what decides between a write and the dead-letter store. It runs once per record, so each schema is
 * compiled once and the bytes are parsed once.
 */
import { Data, Either, ParseResult, Schema } from "effect"
import { AuditEvent } from "./AuditEvent.ts"
import { DetectionResult, readDetectionResult } from "./DetectionResult.ts"
import { PerformanceMetric } from "./PerformanceMetric.ts"
import { TransactionRecord } from "./TransactionRecord.ts"

export type TopicKind = "detection" | "metric" | "transaction" | "audit"

export type Decoded =
  | { readonly _tag: "Detection"; readonly value: DetectionResult }
  | { readonly _tag: "Metric"; readonly value: PerformanceMetric }
  | { readonly _tag: "Transaction"; readonly value: TransactionRecord }
  | { readonly _tag: "Audit"; readonly value: AuditEvent }

/** Why a value is not a message: no bytes, bytes that are not UTF-8, text that is not JSON, or JSON off contract. */
export class DecodeFailure extends Data.TaggedError("DecodeFailure")<{
  readonly kind: "empty" | "not_utf8" | "not_json" | "invalid"
  readonly message: string
}> {}

// Enough to name the field and the offending value; a whole echoed payload helps nobody in a log line.
const maxMessageLength = 500

const clip = (text: string): string =>
  text.length <= maxMessageLength ? text : `${text.slice(0, maxMessageLength - 1)}…`

const pathOf = (path: ReadonlyArray<PropertyKey>): string =>
  path.map((key, i) => (typeof key === "number" ? `[${key}]` : i === 0 ? String(key) : `.${String(key)}`)).join("")

// Effect words every type mismatch as "Expected <type>, actual <value>".
const typeMismatch = /^Expected (.*), actual (.*)$/s

/**
 * One line naming the field and the reason. A union reports one issue per member: the deepest one
 * is the member that nearly matched, and members failing at the same place read as one alternative.
 */
const describe = (issues: ReadonlyArray<ParseResult.ArrayFormatterIssue>): string => {
  const depth = Math.max(...issues.map((issue) => issue.path.length))
  const deepest = issues.filter((issue) => issue.path.length === depth)
  const where = depth === 0 ? "" : `${pathOf(deepest[0]!.path)}: `
  const mismatches = deepest.map((issue) => typeMismatch.exec(issue.message))
  if (deepest.length > 1 && mismatches.every((match) => match !== null)) {
    return `${where}Expected ${mismatches.map((match) => match![1]).join(" | ")}, actual ${mismatches[0]![2]}`
  }
  return deepest.map((issue) => `${where}${issue.message}`).join("; ")
}

const invalid = (message: string): DecodeFailure => new DecodeFailure({ kind: "invalid", message: clip(message) })

/**
 * A topic's decoder. `read`, when the topic has one, is its schema's hand-written hot path; anything it
 * does not accept is decoded by the schema, so the schema alone decides what is rejected and why.
 */
const decoderOf = <A, I>(
  schema: Schema.Schema<A, I>,
  wrap: (value: A) => Decoded,
  read?: (json: unknown) => A | undefined
) => {
  const decodeUnknown = Schema.decodeUnknownEither(schema)
  return (json: unknown): Either.Either<Decoded, DecodeFailure> => {
    const quick = read?.(json)
    if (quick !== undefined) return Either.right(wrap(quick))
    // Said here because Effect would name the whole struct type where a reader wants "an object".
    if (typeof json !== "object" || json === null || Array.isArray(json)) {
      return Either.left(
        invalid(
          `expected a JSON object, got ${
            json === null ? "null" : Array.isArray(json) ? "an array" : `a ${typeof json}`
          }`
        )
      )
    }
    return Either.mapBoth(decodeUnknown(json), {
      onLeft: (error) => invalid(describe(ParseResult.ArrayFormatter.formatErrorSync(error))),
      onRight: wrap
    })
  }
}

const decoders: Record<TopicKind, (json: unknown) => Either.Either<Decoded, DecodeFailure>> = {
  detection: decoderOf(DetectionResult, (value) => ({ _tag: "Detection", value }), readDetectionResult),
  metric: decoderOf(PerformanceMetric, (value) => ({ _tag: "Metric", value })),
  transaction: decoderOf(TransactionRecord, (value) => ({ _tag: "Transaction", value })),
  audit: decoderOf(AuditEvent, (value) => ({ _tag: "Audit", value }))
}

const utf8 = new TextDecoder("utf-8", { fatal: true })

const notUtf8 = (where: string) =>
  new DecodeFailure({ kind: "not_utf8", message: `the value is not valid UTF-8: ${where}` })

/** Where a value stops being UTF-8; only asked once decoding has already failed, so speed does not matter. */
const whereNotUtf8 = (value: Buffer): DecodeFailure => {
  const stepwise = new TextDecoder("utf-8", { fatal: true })
  // Where the multi-byte sequence being read began, or -1 between characters.
  let sequenceStart = -1
  for (let offset = 0; offset < value.length; offset++) {
    try {
      const text = stepwise.decode(value.subarray(offset, offset + 1), { stream: true })
      sequenceStart = text !== "" ? -1 : sequenceStart === -1 ? offset : sequenceStart
    } catch {
      const start = sequenceStart === -1 ? offset : sequenceStart
      const bytes = Array.from(value.subarray(start, offset + 1), (byte) => byte.toString(16).padStart(2, "0"))
      return notUtf8(`bytes ${bytes.join(" ")} at offset ${start}`)
    }
  }
  return notUtf8(`a multi-byte sequence cut off at the end (offset ${sequenceStart})`)
}

export const decode = (kind: TopicKind, value: Buffer | null): Either.Either<Decoded, DecodeFailure> => {
  if (value === null || value.length === 0) {
    return Either.left(new DecodeFailure({ kind: "empty", message: "the record has no value" }))
  }
  let text: string
  try {
    text = utf8.decode(value)
  } catch {
    return Either.left(whereNotUtf8(value))
  }
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (error) {
    return Either.left(
      new DecodeFailure({ kind: "not_json", message: clip(`the value is not JSON: ${(error as SyntaxError).message}`) })
    )
  }
  return decoders[kind](json)
}
