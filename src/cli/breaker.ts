import { Effect } from "effect"
import type { Command } from "./Command.ts"
import { callDaemon, endpointUrl } from "./DaemonEndpoint.ts"
import { UsageError } from "./UsageError.ts"

/**
 * `sentinel breaker`: an operator's hand on a running daemon's circuit breakers. Forcing a store's
 * breaker open stops the daemon calling it (its path waits, Kafka keeps the backlog) until reset —
 * for planned maintenance of the store, say.
 */
export const breakerCommand: Command = {
  summary: "show, force open or reset a running daemon's circuit breakers",
  usage:
    "sentinel breaker [status | open <postgres|clickhouse> | reset <postgres|clickhouse>] [--url http://host:port]\n" +
    "  status             each breaker's state (the default)\n" +
    "  open <name>        pin the breaker open until reset: the store is not called meanwhile\n" +
    "  reset <name>       close it again\n" +
    "  --url U            the daemon's HTTP endpoint (default: from SENTINEL_HTTP_HOST and SENTINEL_HTTP_PORT)",
  options: { url: { type: "string" } },
  allowPositionals: true,
  run: (settings, values, positionals) =>
    Effect.gen(function*() {
      const [action = "status", name, ...extra] = positionals
      if (
        extra.length > 0 || (action === "status") !== (name === undefined) ||
        !["status", "open", "reset"].includes(action)
      ) {
        return yield* Effect.fail(new UsageError(`unexpected arguments: ${positionals.join(" ")}`))
      }
      const base = yield* endpointUrl(settings, values.url)
      const answer = action === "status"
        ? yield* callDaemon(base, "/breakers")
        : yield* callDaemon(base, `/breakers/${encodeURIComponent(name!)}/${action}`, "POST")
      process.stdout.write(`${JSON.stringify(answer.body)}\n`)
      return answer.status === 200 ? 0 : 1
    })
}
