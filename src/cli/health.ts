import { Effect } from "effect"
import type { Command } from "./Command.ts"
import { callDaemon, endpointUrl } from "./DaemonEndpoint.ts"

/** EX_UNAVAILABLE: nothing answered. */
const unreachable = 69

/** `sentinel health`: a running daemon's readiness, for people and for probes. */
export const healthCommand: Command = {
  summary: "ask a running daemon whether it is ready (exit 0 ready, 1 not ready, 69 unreachable)",
  usage: "sentinel health [--url http://host:port] [--json]\n" +
    "  --url U   the daemon's HTTP endpoint (default: from SENTINEL_HTTP_HOST and SENTINEL_HTTP_PORT)\n" +
    "  --json    print the whole /readyz answer as JSON",
  options: { url: { type: "string" }, json: { type: "boolean" } },
  run: (settings, values) =>
    Effect.gen(function*() {
      const base = yield* endpointUrl(settings, values.url)
      const answer = yield* Effect.either(callDaemon(base, "/readyz"))
      if (answer._tag === "Left") {
        process.stderr.write(`sentinel health: ${answer.left.message}\n`)
        return unreachable
      }
      const body = answer.right.body
      if (values.json === true) {
        process.stdout.write(`${JSON.stringify(body, null, 2)}\n`)
      } else {
        const components = (body.components ?? {}) as Record<string, Record<string, unknown>>
        const lines = [`${String(body.status)} (${base})`]
        for (const name of ["kafka", "postgres", "clickhouse", "outbox"]) {
          const component = components[name] ?? {}
          const error = component.error === undefined ? "" : `: ${String(component.error)}`
          lines.push(`  ${name.padEnd(11)} ${String(component.status)}${error}`)
        }
        for (const [name, breaker] of Object.entries(components.breakers ?? {})) {
          lines.push(`  breaker ${name.padEnd(11)} ${String((breaker as { state: unknown }).state)}`)
        }
        for (const [name, fiber] of Object.entries(components.fibers ?? {})) {
          const status = fiber as { state: unknown; restarts: unknown }
          lines.push(`  fiber ${name.padEnd(13)} ${String(status.state)} (restarts ${String(status.restarts)})`)
        }
        for (const reason of (body.reasons ?? []) as ReadonlyArray<string>) lines.push(`  not ready: ${reason}`)
        process.stdout.write(`${lines.join("\n")}\n`)
      }
      return body.ready === true ? 0 : 1
    })
}
