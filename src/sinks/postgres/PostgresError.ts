/**
 * What a PostgreSQL failure means to the caller: `transient` when the server or the network failed and
 * the same work will succeed later (retry with backoff), `permanent` when the statement or its data was
 * refused and retrying cannot help.
 */
import type { SqlError } from "@effect/sql/SqlError"
import { Data } from "effect"

// The same two answers as src/sinks/clickhouse/ClickHouseError.ts gives for ClickHouse.
export type Classification = "transient" | "permanent"

// Connection exception (08), insufficient resources (53: 53300 too many connections, out of memory,
// disk full), operator intervention (57: 57P01 admin shutdown, crash shutdown, cannot connect now,
// 57014 statement timeout), system error (58).
const transientClasses: ReadonlySet<string> = new Set(["08", "53", "57", "58"])
// Serialization failure, deadlock, lock timeout: the transaction lost a race, not an argument.
const transientCodes: ReadonlySet<string> = new Set(["40001", "40P01", "55P03"])

const sqlState = /^[0-9A-Z]{5}$/

/**
 * Classifies by the error's SQLSTATE `code`. A system error (numeric `errno`: ECONNREFUSED, ECONNRESET,
 * ETIMEDOUT, …) or an error with no SQLSTATE (pg's "Connection terminated unexpectedly", pool timeouts)
 * never reached a verdict from the server, so it is transient. Every other SQLSTATE — data (22), integrity
 * (23), syntax or access (42), authorization (28), … — is permanent.
 */
export const classifyPostgresError = (error: { readonly code?: unknown; readonly errno?: unknown }): Classification => {
  if (typeof error.errno === "number" || typeof error.code !== "string" || !sqlState.test(error.code)) {
    return "transient"
  }
  return transientCodes.has(error.code) || transientClasses.has(error.code.slice(0, 2)) ? "transient" : "permanent"
}

/**
 * A connection refused over TLS: a certificate not signed by the configured CA, a name that does not
 * match (a string code that is no SQLSTATE, and no system errno). Fixing it takes an operator, so a
 * start does not wait for it; a write still counts it transient, since a batch must never be
 * dead-lettered record by record for a connection's fault.
 */
export const isTlsRefusal = (error: { readonly code?: unknown; readonly errno?: unknown }): boolean =>
  typeof error.code === "string" && !sqlState.test(error.code) && typeof error.errno !== "number"

export class PostgresWriteError extends Data.TaggedError("PostgresWriteError")<{
  readonly classification: Classification
  /** The SQLSTATE or system error code, when there was one. */
  readonly code: string | undefined
  readonly message: string
  readonly cause: unknown
}> {}

/** The driver's error as @effect/sql wraps it, or anything thrown on the way. */
export const postgresWriteError = (error: SqlError): PostgresWriteError => {
  const cause: { readonly code?: unknown; readonly errno?: unknown; readonly message?: unknown } =
    typeof error.cause === "object" && error.cause !== null ? error.cause : {}
  return new PostgresWriteError({
    classification: classifyPostgresError(cause),
    code: typeof cause.code === "string" ? cause.code : undefined,
    message: typeof cause.message === "string" && cause.message !== "" ? cause.message : error.message,
    cause: error
  })
}
