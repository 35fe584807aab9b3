/**
 * How every Sentinel command reaches PostgreSQL: the configured URL and TLS, in the shape
 * `PgClient.layer` takes.
 *
 * The URL's `ssl*` parameters are removed: the configuration has already read them (Config.ts), and
 * node-postgres would let them override the `ssl` options given beside the URL.
 */
import type { PgClientConfig } from "@effect/sql-pg/PgClient"
import { Duration, Redacted } from "effect"
import type { SentinelSettings } from "../../config/Config.ts"
import { tlsOptions } from "../../config/Tls.ts"
import { connectAs } from "./WriterRole.ts"

const sslParameters = ["ssl", "sslmode", "sslrootcert", "sslcert", "sslkey", "uselibpqcompat"]

/** `role`, when given, is the role every session runs as (WriterRole.ts). */
export const pgConnection = (
  postgres: Pick<SentinelSettings["postgres"], "url" | "ssl">,
  role?: string
): Pick<PgClientConfig, "url" | "ssl" | "connectTimeout"> => {
  const url = new URL(Redacted.value(postgres.url))
  for (const name of sslParameters) url.searchParams.delete(name)
  const plain = Redacted.make(url.toString())
  const { caFile, mode } = postgres.ssl
  return {
    // Without it a server that accepts and never answers (a black-holed route) holds a connection
    // attempt, and a command starting, forever.
    connectTimeout: Duration.seconds(10),
    url: role === undefined ? plain : connectAs(plain, role),
    ssl: mode === "disable"
      ? false
      : tlsOptions({ caFile, certFile: undefined, keyFile: undefined }, mode === "verify-full")
  }
}
