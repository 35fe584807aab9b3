import { Data, Effect } from "effect"
import type { SentinelSettings } from "../config/Config.ts"
import { UsageError } from "./UsageError.ts"

/** The running daemon did not answer: not started, another address, or the endpoint is off. */
export class DaemonUnreachable extends Data.TaggedError("DaemonUnreachable")<{
  readonly url: string
  readonly cause: unknown
}> {
  override get message() {
    return `no daemon answers at ${this.url}: ${this.cause instanceof Error ? this.cause.message : String(this.cause)}`
  }
}

/** The daemon's HTTP endpoint: `--url` when given, else the one its configuration names. */
export const endpointUrl = (settings: SentinelSettings, url: unknown): Effect.Effect<string, UsageError> => {
  if (typeof url === "string") return Effect.succeed(url.replace(/\/$/, ""))
  if (settings.http.port === undefined) {
    return Effect.fail(new UsageError("SENTINEL_HTTP_PORT is off: give the daemon's endpoint with --url"))
  }
  const host = settings.http.host === "0.0.0.0" ? "127.0.0.1" : settings.http.host
  return Effect.succeed(`http://${host.includes(":") ? `[${host}]` : host}:${settings.http.port}`)
}

/** One request to the daemon; its status and parsed JSON body. */
export const callDaemon = (base: string, path: string, method: "GET" | "POST" = "GET") =>
  Effect.tryPromise({
    try: async () => {
      const response = await fetch(`${base}${path}`, { method, signal: AbortSignal.timeout(10_000) })
      return { status: response.status, body: (await response.json()) as Record<string, unknown> }
    },
    catch: (cause) => new DaemonUnreachable({ url: `${base}${path}`, cause })
  })
