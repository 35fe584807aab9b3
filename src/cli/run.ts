import { PgClient } from "@effect/sql-pg"
import { Deferred, Duration, Effect, Fiber, Layer } from "effect"
import type { SentinelSettings } from "../config/Config.ts"
import * as OutboxRelay from "../outbox/OutboxRelay.ts"
import * as Pipeline from "../pipeline/Pipeline.ts"
import * as CircuitBreaker from "../resilience/CircuitBreaker.ts"
import { supervised } from "../resilience/Supervisor.ts"
import * as AnalyticsWriter from "../sinks/clickhouse/AnalyticsWriter.ts"
import * as ClickHouse from "../sinks/clickhouse/ClickHouse.ts"
import * as AlertWriter from "../sinks/postgres/AlertWriter.ts"
import { connectAs } from "../sinks/postgres/WriterRole.ts"
import * as KafkaSource from "../source/KafkaSource.ts"
import * as Tracing from "../telemetry/Tracing.ts"
import type { Command } from "./Command.ts"

/** The daemon's stores and writers, wired here at the edge and nowhere else. */
export const storesLayer = (settings: SentinelSettings) => {
  const postgres = PgClient.layer({
    url: settings.postgres.role === undefined
      ? settings.postgres.url
      : connectAs(settings.postgres.url, settings.postgres.role),
    maxConnections: settings.postgres.maxConnections,
    applicationName: "sentinel"
  })
  const clickhouse = ClickHouse.layer(settings.clickhouse.target, { faultControl: settings.clickhouse.faultControl })
  return Layer.mergeAll(
    AlertWriter.layer({ autoBlockSeverities: settings.postgres.autoBlockSeverities }),
    AnalyticsWriter.layer(),
    OutboxRelay.layer({ ...settings.outbox, retry: settings.retry })
  ).pipe(
    Layer.provide(Layer.merge(postgres, clickhouse)),
    // The tracer is provided to the daemon's own fibers too, not only to the stores' construction.
    Layer.provideMerge(
      Tracing.layer({ serviceName: settings.telemetry.serviceName, endpoint: settings.telemetry.otlpEndpoint })
    )
  )
}

/**
 * `sentinel run`: consumes until SIGTERM or SIGINT, then stops taking records, finishes and commits
 * the batches in flight, lets the relay finish its claimed batch, closes every connection and exits
 * 0. Past `SENTINEL_SHUTDOWN_TIMEOUT_MS` the work in flight is abandoned uncommitted (it is redone,
 * idempotently, on the next start).
 */
export const runDaemon = (settings: SentinelSettings) =>
  Effect.gen(function*() {
    const stop = yield* Deferred.make<void>()
    const requestStop = (signal: NodeJS.Signals) => {
      Effect.runFork(Effect.logInfo(`${signal} received: finishing the batches in flight`))
      Effect.runFork(Deferred.succeed(stop, undefined))
    }
    process.once("SIGTERM", requestStop)
    process.once("SIGINT", requestStop)

    const relay = yield* OutboxRelay.OutboxRelay
    const guard = (store: Pipeline.SinkGuard["store"]) =>
      Effect.map(
        CircuitBreaker.make(store, { ...settings.breaker, isFailure: Pipeline.isTransient }),
        (breaker): Pipeline.SinkGuard => ({ store, timeout: settings.sinkTimeout, breaker, retry: settings.retry })
      )
    const postgresGuard = yield* guard("postgres")
    const clickhouseGuard = yield* guard("clickhouse")
    const alertPath = Pipeline.alertPath(postgresGuard)
    const analyticsPath = Pipeline.analyticsPath(clickhouseGuard)
    // Each path owns its consumer: a restarted path resumes from its committed offsets.
    const consume = <R>(groupId: string, path: Pipeline.Path<R>) =>
      supervised(
        `${path.name} path`,
        settings.supervision,
        Effect.scoped(
          Effect.flatMap(
            KafkaSource.make({ ...settings.kafka, groupId }),
            (source) => Pipeline.run(settings, source, path, alertPath, stop)
          )
        )
      )
    const fibers = yield* Effect.all([
      Effect.fork(consume(settings.kafka.groupId, alertPath)),
      Effect.fork(consume(settings.kafka.analyticsGroupId, analyticsPath)),
      Effect.fork(supervised("outbox relay", settings.supervision, relay.run(stop, clickhouseGuard.breaker)))
    ])
    yield* Effect.logInfo("sentinel running")
    const deadline = Deferred.await(stop).pipe(Effect.zipRight(Effect.sleep(settings.shutdownTimeout)))
    // The first fiber to give up (a crash loop) stops the daemon, which then exits non-zero.
    yield* Effect.all(fibers.map(Fiber.join), { concurrency: "unbounded", discard: true }).pipe(
      Effect.raceFirst(deadline)
    )
    yield* Effect.logInfo("sentinel stopped").pipe(
      Effect.annotateLogs({ shutdownTimeoutMs: Duration.toMillis(settings.shutdownTimeout) })
    )
    return 0
  }).pipe(Effect.scoped, Effect.provide(storesLayer(settings)))

export const runCommand: Command = {
  summary: "run the daemon: consume, persist, relay the outbox",
  usage: "sentinel run",
  options: {},
  run: (settings) => runDaemon(settings)
}
