/**
 * Field schemas shared by the four topics. Each one accepts a field as the detector really sends it
 * and decodes it to the single form the writers rely on.
 */
import { Either, ParseResult, Schema } from "effect"

// Producers send ISO-8601 local time without a zone; a space separator, 0-9 fractional digits and a
// trailing `Z` or offset are tolerated because other producers (and Python's `str(datetime)`) emit them.
const dateTimePattern =
  /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:Z|([+-])(\d{2})(?::?(\d{2}))?)?$/

// The detector's own form, `2026-04-16T14:22:07.418233`, is already normal: it is recognised without
// the regex and handed back as it is, because every record carries one.
const detectorForm = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}$/

// ClickHouse DateTime64 cannot hold anything outside these years; such a value is a producer bug.
const firstYear = 1900
const lastYear = 2299

const monthLengths = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31] as const

const daysInMonth = (year: number, month: number): number =>
  month === 2 && year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : monthLengths[month - 1]!

const pad = (value: number, width: number): string => String(value).padStart(width, "0")

/** The two digits at `at` as a number; only called where a pattern has already matched digits. */
const twoDigits = (text: string, at: number): number => (text.charCodeAt(at) - 48) * 10 + text.charCodeAt(at + 1) - 48

/** Why year-month-day hour:minute:second is not a real date-time, or undefined when it is one. */
const calendarDefect = (text: string): string | undefined => {
  const year = twoDigits(text, 0) * 100 + twoDigits(text, 2)
  const month = twoDigits(text, 5)
  const day = twoDigits(text, 8)
  if (month < 1 || month > 12) return `month ${text.slice(5, 7)} is not 01-12`
  if (day < 1 || day > daysInMonth(year, month)) return `day ${text.slice(8, 10)} does not exist in ${text.slice(0, 7)}`
  if (twoDigits(text, 11) > 23) return `hour ${text.slice(11, 13)} is not 00-23`
  if (twoDigits(text, 14) > 59) return `minute ${text.slice(14, 16)} is not 00-59`
  if (twoDigits(text, 17) > 59) return `second ${text.slice(17, 19)} is not 00-59`
  if (year < firstYear || year > lastYear) return `year ${text.slice(0, 4)} is outside ${firstYear}-${lastYear}`
  return undefined
}

const notReal = (text: string, why: string) => Either.left(`${JSON.stringify(text)} is not a real date-time: ${why}`)

/**
 * Reads a producer's date-time into exactly `YYYY-MM-DDTHH:MM:SS.ffffff` (UTC when an offset was
 * given, otherwise the producer's local time as sent), or the reason it is not a real date-time.
 */
const normaliseTimestamp = (text: string): Either.Either<string, string> => {
  if (detectorForm.test(text)) {
    const defect = calendarDefect(text)
    return defect === undefined ? Either.right(text) : notReal(text, defect)
  }
  const match = dateTimePattern.exec(text)
  if (match === null) {
    return Either.left(`expected an ISO-8601 date-time like 2026-04-16T14:22:07.418233, got ${JSON.stringify(text)}`)
  }
  const defect = calendarDefect(text)
  if (defect !== undefined) return notReal(text, defect)
  const [, , , , , , , fraction = "", sign, offsetHours = "00", offsetMinutes = "00"]: ReadonlyArray<
    string | undefined
  > = match
  if (Number(offsetHours) > 23 || Number(offsetMinutes) > 59) {
    return notReal(text, `offset ${sign}${offsetHours}:${offsetMinutes} is not a UTC offset`)
  }
  // Beyond microseconds the stores keep nothing, so extra digits are cut, never rounded into the second.
  const micros = fraction.padEnd(6, "0").slice(0, 6)
  const offset = (Number(offsetHours) * 60 + Number(offsetMinutes)) * (sign === "-" ? -1 : 1)
  if (offset === 0) return Either.right(`${text.slice(0, 10)}T${text.slice(11, 19)}.${micros}`)
  const utc = new Date(
    Date.UTC(
      Number(text.slice(0, 4)),
      twoDigits(text, 5) - 1,
      twoDigits(text, 8),
      twoDigits(text, 11),
      twoDigits(text, 14) - offset,
      twoDigits(text, 17)
    )
  )
  const utcYear = utc.getUTCFullYear()
  if (utcYear < firstYear || utcYear > lastYear) {
    return notReal(text, `year ${utcYear} (in UTC) is outside ${firstYear}-${lastYear}`)
  }
  return Either.right(
    `${pad(utcYear, 4)}-${pad(utc.getUTCMonth() + 1, 2)}-${pad(utc.getUTCDate(), 2)}T` +
      `${pad(utc.getUTCHours(), 2)}:${pad(utc.getUTCMinutes(), 2)}:${pad(utc.getUTCSeconds(), 2)}.${micros}`
  )
}

/** A producer date-time, decoded to `YYYY-MM-DDTHH:MM:SS.ffffff` without a zone. */
export const Timestamp = Schema.transformOrFail(Schema.String, Schema.String, {
  decode: (text, _, ast) =>
    Either.match(normaliseTimestamp(text), {
      onLeft: (reason) => ParseResult.fail(new ParseResult.Type(ast, text, reason)),
      onRight: ParseResult.succeed
    }),
  encode: ParseResult.succeed
}).annotations({ identifier: "Timestamp" })

const locationText = (code: string | number): string => (typeof code === "number" ? String(code) : code)

/**
 * A location code: the detector sends numbers (`150.0`) where other producers send strings. Decoded
 * to a string; a number becomes its shortest decimal form (150 → "150", 12.5 → "12.5").
 */
export const LocationCode = Schema.transform(Schema.Union(Schema.String, Schema.Finite), Schema.String, {
  decode: locationText,
  encode: (code) => code
}).annotations({ identifier: "LocationCode" })

/** A field that is null when the detector runs rules only; an absent key means the same. */
export const absentAsNull = <S extends Schema.Schema.Any>(schema: S) =>
  Schema.optionalWith(Schema.NullOr(schema), { default: () => null })

/** An optional field; Python producers write `None` for a value they do not have, so null reads as absent. */
export const nullAsAbsent = <S extends Schema.Schema.Any>(schema: S) =>
  Schema.optionalWith(schema, { exact: true, nullable: true })

/** The detector's score: a probability. */
export const FraudScore = Schema.Finite.pipe(Schema.between(0, 1))

/** Milliseconds the detector spent; Python may send a float. */
export const ProcessingTimeMs = Schema.Finite.pipe(Schema.nonNegative())

// ---------------------------------------------------------------------------------------------------
// The hot path. Effect's decoder takes about 20 times as long as a hand-written reader for a detection
// result (measured: ~110 µs against ~5 µs), far over the per-record budget, so a topic may also have a
// reader built from these: the same checks and the same output as its schema, or a throw of
// `rejected` for anything else. A rejected value is then decoded with the schema, which stays the one
// that explains failures (and wins if the two ever disagree).

/** Thrown by the readers below; one instance, so a rejection costs no stack trace. */
const rejected: Error = new Error("rejected by the hot path; the schema says why")

export const reject = (): never => {
  throw rejected
}

/** Runs a reader: its value, or undefined when the value must go through the schema instead. */
export const attempt = <A>(read: (json: unknown) => A, json: unknown): A | undefined => {
  try {
    return read(json)
  } catch (error) {
    if (error === rejected) return undefined
    throw error
  }
}

export const readObject = (value: unknown): { readonly [key: string]: unknown } =>
  typeof value === "object" && value !== null && !Array.isArray(value) ? value as { [key: string]: unknown } : reject()

export const readString = (value: unknown): string => typeof value === "string" ? value : reject()

export const readNonEmptyString = (value: unknown): string =>
  typeof value === "string" && value.length > 0 ? value : reject()

export const readBoolean = (value: unknown): boolean => typeof value === "boolean" ? value : reject()

export const readFinite = (value: unknown): number =>
  typeof value === "number" && Number.isFinite(value) ? value : reject()

export const readNonNegativeInt = (value: unknown): number =>
  Number.isSafeInteger(value) && (value as number) >= 0 ? value as number : reject()

export const readFraudScore = (value: unknown): number =>
  typeof value === "number" && value >= 0 && value <= 1 ? value : reject()

export const readProcessingTimeMs = (value: unknown): number =>
  typeof value === "number" && value >= 0 && value !== Infinity ? value : reject()

export const readStrings = (value: unknown): ReadonlyArray<string> => {
  if (!Array.isArray(value)) return reject()
  for (const item of value) if (typeof item !== "string") reject()
  return value
}

export const readTimestamp = (value: unknown): string => {
  if (typeof value !== "string") return reject()
  const normalised = normaliseTimestamp(value)
  return Either.isRight(normalised) ? normalised.right : reject()
}

export const readLocationCode = (value: unknown): string =>
  typeof value === "string" || (typeof value === "number" && Number.isFinite(value)) ? locationText(value) : reject()

/** The reader of an `absentAsNull` field. */
export const readAbsentAsNull = <A>(read: (value: unknown) => A, value: unknown): A | null =>
  value === undefined || value === null ? null : read(value)
