/**
 * The daemon's HTTP endpoint, for Prometheus, orchestrators and operators:
 *
 *   GET  /metrics                     Prometheus text format
 *   GET  /healthz                     alive (200)
 *   GET  /readyz                      ready (200) or not (503), with every component's health as JSON
 *   GET  /breakers                    each circuit breaker's state
 *   POST /breakers/<name>/open        pins a breaker open (its store is then left alone) until reset
 *   POST /breakers/<name>/reset       closes it again
 *
 * It binds to loopback by default: the breaker controls are for operators, not for the network.
 */
import { Effect, Runtime, type Scope } from "effect"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import type { CircuitBreaker } from "../resilience/CircuitBreaker.ts"
import type { Health } from "./Health.ts"
import { exposition } from "./Metrics.ts"

export interface HttpEndpointConfig {
  readonly host: string
  /** 0 takes any free port. */
  readonly port: number
}

export interface HttpEndpoint {
  /** The port bound, which differs from the configured one when that was 0. */
  readonly port: number
}

const json = (response: http.ServerResponse, status: number, body: unknown) => {
  response.writeHead(status, { "content-type": "application/json" })
  response.end(`${JSON.stringify(body)}\n`)
}

export const make = (
  config: HttpEndpointConfig,
  health: Health,
  breakers: ReadonlyArray<CircuitBreaker>
): Effect.Effect<HttpEndpoint, Error, Scope.Scope> =>
  Effect.gen(function*() {
    const runtime = yield* Effect.runtime<never>()
    const run = <A>(effect: Effect.Effect<A>) => Runtime.runPromise(runtime)(effect)

    const breakerStates = Effect.forEach(breakers, (breaker) =>
      Effect.map(breaker.state, (state) => [breaker.name, { state }] as const)).pipe(Effect.map(Object.fromEntries))

    const handle = async (request: http.IncomingMessage, response: http.ServerResponse) => {
      const url = new URL(request.url ?? "/", "http://sentinel")
      const control = /^\/breakers\/([^/]+)\/(open|reset)$/.exec(url.pathname)
      if (request.method === "GET" && url.pathname === "/metrics") {
        response.writeHead(200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" })
        return response.end(exposition())
      }
      if (request.method === "GET" && url.pathname === "/healthz") {
        return json(response, 200, await run(health.liveness))
      }
      if (request.method === "GET" && url.pathname === "/readyz") {
        const readiness = await run(health.readiness)
        return json(response, readiness.ready ? 200 : 503, readiness)
      }
      if (request.method === "GET" && url.pathname === "/breakers") {
        return json(response, 200, await run(breakerStates))
      }
      if (control !== null) {
        if (request.method !== "POST") {
          return json(response, 405, { error: "use POST" })
        }
        const breaker = breakers.find((b) =>
          b.name === control[1]
        )
        if (breaker === undefined) {
          return json(response, 404, { error: `no breaker "${control[1]}"`, breakers: breakers.map((b) => b.name) })
        }
        await run(
          Effect.zipRight(
            control[2] === "open" ? breaker.forceOpen : breaker.reset,
            Effect.logWarning(`circuit breaker ${breaker.name}: ${control[2]} requested over HTTP`)
          )
        )
        return json(response, 200, { [breaker.name]: { state: await run(breaker.state) } })
      }
      return json(response, 404, {
        error: "not found",
        endpoints: ["/metrics", "/healthz", "/readyz", "/breakers", "/breakers/<name>/open", "/breakers/<name>/reset"]
      })
    }

    const server = http.createServer((request, response) => {
      handle(request, response).catch((error: unknown) => json(response, 500, { error: String(error) }))
    })
    const port = yield* Effect.acquireRelease(
      Effect.async<number, Error>((resume) => {
        server.once("error", (error) => resume(Effect.fail(error)))
        server.listen(config.port, config.host, () => resume(Effect.succeed((server.address() as AddressInfo).port)))
      }),
      () =>
        Effect.async<void>((resume) => {
          server.close(() => resume(Effect.void))
          // A scraper's keep-alive connection must not hold the shutdown.
          server.closeAllConnections()
        })
    )
    yield* Effect.logInfo("http endpoint listening").pipe(Effect.annotateLogs({ host: config.host, port }))
    return { port }
  })
