/**
 * The one place that decides how Sentinel reaches ClickHouse: over HTTP when `CLICKHOUSE_URL` is
 * set, otherwise the embedded chDB engine at `CLICKHOUSE_PATH`. Both are the same
 * `@clickhouse/client` API, so nothing downstream knows which one it talks to.
 */
import { type ClickHouseClient, type ClickHouseClientConfigOptions, createClient } from "@clickhouse/client"
import { createChdbConnection } from "chdb/connection"
import { Context, Effect, Layer, type Scope } from "effect"
import * as fs from "node:fs"
import { withFaults } from "./FaultInjection.ts"

export type ClickHouseTarget =
  | {
    readonly _tag: "Server"
    readonly url: string
    readonly username: string
    readonly password: string
    readonly database: string
    /** For an https:// URL: the CA that signs the server's certificate, and a client certificate. */
    readonly tls?: {
      readonly caFile: string
      readonly client?: { readonly certFile: string; readonly keyFile: string }
    }
  }
  | { readonly _tag: "Embedded"; readonly path: string }

export class ClickHouse extends Context.Tag("sentinel/ClickHouse")<ClickHouse, ClickHouseClient>() {}

/** Reads the target from environment-shaped settings; the URL wins when both are given. */
export const targetFrom = (env: Record<string, string | undefined>, defaultPath: string): ClickHouseTarget =>
  env.CLICKHOUSE_URL !== undefined && env.CLICKHOUSE_URL !== ""
    ? {
      _tag: "Server",
      url: env.CLICKHOUSE_URL,
      username: env.CLICKHOUSE_USER ?? "default",
      password: env.CLICKHOUSE_PASSWORD ?? "",
      database: env.CLICKHOUSE_DATABASE ?? "default",
      ...(env.CLICKHOUSE_CA_FILE === undefined ? {} : {
        tls: {
          caFile: env.CLICKHOUSE_CA_FILE,
          ...(env.CLICKHOUSE_CERT_FILE === undefined || env.CLICKHOUSE_KEY_FILE === undefined ? {} : {
            client: { certFile: env.CLICKHOUSE_CERT_FILE, keyFile: env.CLICKHOUSE_KEY_FILE }
          })
        }
      })
    }
    : { _tag: "Embedded", path: env.CLICKHOUSE_PATH ?? defaultPath }

export const describeTarget = (target: ClickHouseTarget): string =>
  target._tag === "Server" ? `${target.url} (database ${target.database})` : `chDB at ${target.path}`

/** The client's configuration for `target`; TLS files are read here, when a client is made. */
export const clientConfig = (target: ClickHouseTarget): ClickHouseClientConfigOptions =>
  target._tag === "Server"
    ? {
      url: target.url,
      username: target.username,
      password: target.password,
      database: target.database,
      request_timeout: 60_000,
      ...(target.tls === undefined ? {} : {
        tls: {
          ca_cert: fs.readFileSync(target.tls.caFile),
          ...(target.tls.client === undefined ? {} : {
            cert: fs.readFileSync(target.tls.client.certFile),
            key: fs.readFileSync(target.tls.client.keyFile)
          })
        }
      })
    }
    : { connection: embedded(target.path) }

export const makeClient = (target: ClickHouseTarget): ClickHouseClient => createClient(clientConfig(target))

/**
 * chdb types its connection against the standalone `@clickhouse/client-common` package, which
 * `@clickhouse/client` bundles a copy of: the shapes are the same, the declarations are not.
 */
const embedded = (path: string) =>
  createChdbConnection({ path }) as unknown as NonNullable<ClickHouseClientConfigOptions["connection"]>

export interface ClientOptions {
  /** A fault-injection control file (outage drills): see FaultInjection.ts. */
  readonly faultControl?: string | undefined
}

export const make = (
  target: ClickHouseTarget,
  options: ClientOptions = {}
): Effect.Effect<ClickHouseClient, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const client = makeClient(target)
      return options.faultControl === undefined ? client : withFaults(client, options.faultControl)
    }),
    (client) => Effect.promise(() => client.close())
  )

export const layer = (target: ClickHouseTarget, options: ClientOptions = {}): Layer.Layer<ClickHouse> =>
  Layer.scoped(ClickHouse, make(target, options))
