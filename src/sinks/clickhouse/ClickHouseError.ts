/**
 * ClickHouse failures as tagged data. One function decides whether a failure is transient (retry the
 * same batch later, behind the sink's circuit breaker) or permanent (the rows themselves are at
 * fault: retrying them can never succeed, so they belong in the dead-letter store).
 */
import { Data } from "effect"

/**
 * Server error codes that mean the data or the statement is wrong. Everything else — the network,
 * timeouts, TOO_MANY_PARTS (252), TIMEOUT_EXCEEDED (159), MEMORY_LIMIT_EXCEEDED (241), an unknown
 * table during a deploy — is the environment's fault and clears up by itself or by an operator,
 * so it must never send good records to the dead-letter store.
 */
const permanentCodes: ReadonlySet<string> = new Set([
  "6", //   CANNOT_PARSE_TEXT
  "26", //  CANNOT_PARSE_QUOTED_STRING
  "27", //  CANNOT_PARSE_INPUT_ASSERTION_FAILED
  "38", //  CANNOT_PARSE_DATE
  "41", //  CANNOT_PARSE_DATETIME
  "43", //  ILLEGAL_TYPE_OF_ARGUMENT
  "53", //  TYPE_MISMATCH
  "62", //  SYNTAX_ERROR
  "69", //  ARGUMENT_OUT_OF_BOUND
  "70", //  CANNOT_CONVERT_TYPE
  "72", //  CANNOT_PARSE_NUMBER
  "117", // INCORRECT_DATA
  "130", // CANNOT_READ_ARRAY_FROM_TEXT
  "131", // TOO_LARGE_STRING_SIZE
  "321", // VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
  "349", // CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN
  "457" //  BAD_QUERY_PARAMETER
])

export type Classification = "transient" | "permanent"

const describe = (cause: unknown): { readonly code: string | undefined; readonly message: string } =>
  cause instanceof Error
    ? { code: "code" in cause && typeof cause.code === "string" ? cause.code : undefined, message: cause.message }
    : { code: undefined, message: String(cause) }

/**
 * The one place that classifies a failure. Unknown failures are transient: retrying is safe,
 * dead-lettering is not. Server errors are recognised by their numeric code rather than by class:
 * chDB throws `@clickhouse/client-common`'s ClickHouseError, which is not the class that
 * `@clickhouse/client` re-exports.
 */
export const classify = (cause: unknown): Classification => {
  const { code } = describe(cause)
  return code !== undefined && permanentCodes.has(code) ? "permanent" : "transient"
}

/** A failed read or write of analytics rows. */
export class ClickHouseWriteError extends Data.TaggedError("ClickHouseWriteError")<{
  readonly table: string
  readonly classification: Classification
  /** The server's error code (e.g. "252") or the socket's (e.g. "ECONNRESET"), when there is one. */
  readonly code: string | undefined
  readonly message: string
  readonly cause: unknown
}> {}

export const writeError = (table: string, cause: unknown): ClickHouseWriteError =>
  new ClickHouseWriteError({ table, classification: classify(cause), ...describe(cause), cause })

/** A migration that could not be read, rendered or applied. */
export class ClickHouseMigrationError extends Data.TaggedError("ClickHouseMigrationError")<{
  /** The migration file, when the failure belongs to one. */
  readonly migration: string | undefined
  readonly classification: Classification
  readonly message: string
  readonly cause?: unknown
}> {}

export const migrationError = (migration: string | undefined, cause: unknown): ClickHouseMigrationError =>
  new ClickHouseMigrationError({ migration, classification: classify(cause), message: describe(cause).message, cause })
