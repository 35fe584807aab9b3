/**
 * Field schemas shared by the four topics. Each one accepts a field as the detector really sends it
 * and decodes it to the single form the writers rely on.
 */
import { Either, ParseResult, Schema } from "effect"

// Producers send ISO-8601 local time without a zone; a space separator, 0-9 fractional digits and a
// trailing `Z` or offset are tolerated because other producers (and Python's `str(datetime)`) emit them.
const dateTimePattern =
  /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:(Z)|([+-])(\d{2})(?::?(\d{2}))?)?$/

// ClickHouse DateTime64 cannot hold anything outside these years; such a value is a producer bug.
const firstYear = 1900
const lastYear = 2299

const daysInMonth = (year: number, month: number): number => new Date(Date.UTC(year, month, 0)).getUTCDate()

const pad = (value: number, width: number): string => String(value).padStart(width, "0")

/**
 * Reads a producer's date-time into exactly `YYYY-MM-DDTHH:MM:SS.ffffff` (UTC when an offset was
 * given, otherwise the producer's local time as sent), or the reason it is not a real date-time.
 */
export const normaliseTimestamp = (text: string): Either.Either<string, string> => {
  const match = dateTimePattern.exec(text)
  if (match === null) {
    return Either.left(`expected an ISO-8601 date-time like 2026-04-16T14:22:07.418233, got ${JSON.stringify(text)}`)
  }
  const [, y, mo, d, h, mi, s, fraction = "", zulu, sign, offsetHours = "00", offsetMinutes = "00"]: ReadonlyArray<
    string | undefined
  > = match
  const year = Number(y)
  const month = Number(mo)
  const day = Number(d)
  const hour = Number(h)
  const minute = Number(mi)
  const second = Number(s)
  const invalid = (why: string) => Either.left(`${JSON.stringify(text)} is not a real date-time: ${why}`)
  if (month < 1 || month > 12) return invalid(`month ${mo} is not 01-12`)
  if (day < 1 || day > daysInMonth(year, month)) return invalid(`day ${d} does not exist in ${y}-${mo}`)
  if (hour > 23) return invalid(`hour ${h} is not 00-23`)
  if (minute > 59) return invalid(`minute ${mi} is not 00-59`)
  if (second > 59) return invalid(`second ${s} is not 00-59`)
  if (Number(offsetHours) > 23 || Number(offsetMinutes) > 59) {
    return invalid(`offset ${sign}${offsetHours}:${offsetMinutes} is not a UTC offset`)
  }
  const offset = (Number(offsetHours) * 60 + Number(offsetMinutes)) * (sign === "-" ? -1 : 1)
  // Beyond microseconds the stores keep nothing, so extra digits are cut, never rounded into the second.
  const micros = fraction.length === 6 ? fraction : fraction.padEnd(6, "0").slice(0, 6)
  if (offset === 0) {
    if (year < firstYear || year > lastYear) return invalid(`year ${y} is outside ${firstYear}-${lastYear}`)
    // The detector's own form is already normal: hand the string back without building a new one.
    if (micros === fraction && zulu === undefined && sign === undefined && text.charCodeAt(10) === 84) {
      return Either.right(text)
    }
    return Either.right(`${text.slice(0, 10)}T${text.slice(11, 19)}.${micros}`)
  }
  const utc = new Date(Date.UTC(year, month - 1, day, hour, minute - offset, second))
  const utcYear = utc.getUTCFullYear()
  if (utcYear < firstYear || utcYear > lastYear) {
    return invalid(`year ${utcYear} (in UTC) is outside ${firstYear}-${lastYear}`)
  }
  return Either.right(
    `${pad(utcYear, 4)}-${pad(utc.getUTCMonth() + 1, 2)}-${pad(utc.getUTCDate(), 2)}T` +
      `${pad(utc.getUTCHours(), 2)}:${pad(utc.getUTCMinutes(), 2)}:${pad(utc.getUTCSeconds(), 2)}.${micros}`
  )
}

/** A producer date-time, decoded to `YYYY-MM-DDTHH:MM:SS.ffffff` without a zone. */
export const Timestamp = Schema.transformOrFail(Schema.String, Schema.String, {
  strict: true,
  decode: (text, _, ast) =>
    Either.match(normaliseTimestamp(text), {
      onLeft: (reason) => ParseResult.fail(new ParseResult.Type(ast, text, reason)),
      onRight: ParseResult.succeed
    }),
  encode: ParseResult.succeed
}).annotations({ identifier: "Timestamp" })

/**
 * A location code: the detector sends numbers (`150.0`) where other producers send strings. Decoded
 * to a string; a number becomes its shortest decimal form (150 → "150", 12.5 → "12.5").
 */
export const LocationCode = Schema.transform(Schema.Union(Schema.String, Schema.Finite), Schema.String, {
  strict: true,
  decode: (code) => (typeof code === "number" ? String(code) : code),
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
