import { PgClient } from "@effect/sql-pg"
import type { SqlError } from "@effect/sql/SqlError"
import { type ConfigError, Deferred, Duration, Effect, Fiber, Layer, Option, Runtime } from "effect"
import type { SentinelSettings } from "../config/Config.ts"
import { printConfig } from "../config/PrintConfig.ts"
import * as OutboxRelay from "../outbox/OutboxRelay.ts"
import * as Pipeline from "../pipeline/Pipeline.ts"
import * as CircuitBreaker from "../resilience/CircuitBreaker.ts"
import { transientRetries } from "../resilience/RetryPolicy.ts"
import { supervised } from "../resilience/Supervisor.ts"
import * as AnalyticsWriter from "../sinks/clickhouse/AnalyticsWriter.ts"
import * as ClickHouse from "../sinks/clickhouse/ClickHouse.ts"
import * as Pseudonymisation from "../sinks/clickhouse/Pseudonymisation.ts"
import * as AlertWriter from "../sinks/postgres/AlertWriter.ts"
import { pgConnection } from "../sinks/postgres/PgConnection.ts"
import { classifyPostgresError, isTlsRefusal } from "../sinks/postgres/PostgresError.ts"
import * as KafkaSource from "../source/KafkaSource.ts"
import * as Health from "../telemetry/Health.ts"
import * as HttpEndpoint from "../telemetry/HttpEndpoint.ts"
import * as Tracing from "../telemetry/Tracing.ts"
import type { Command } from "./Command.ts"

/** What is worth waiting for at start: the server down, unreachable or not answering. */
const isTransientConnectFailure = (error: SqlError | ConfigError.ConfigError) => {
  if (error._tag !== "SqlError") return false
  const cause: { readonly code?: unknown; readonly errno?: unknown } =
    typeof error.cause === "object" && error.cause !== null ? error.cause : {}
  return !isTlsRefusal(cause) && classifyPostgresError(cause) === "transient"
}

/** The daemon's stores and writers, wired here at the edge and nowhere else. */
export const storesLayer = (settings: SentinelSettings) => {
  // A PostgreSQL down or unreachable when the daemon starts is waited for like an outage later on
  // (the retry policy's backoff and bound); a refusal (a wrong password, no such database, a
  // certificate) is not.
  const postgres = PgClient.layer({
    ...pgConnection(settings.postgres, settings.postgres.role),
    maxConnections: settings.postgres.maxConnections,
    applicationName: "sentinel"
  }).pipe(Layer.retry(transientRetries("postgres", isTransientConnectFailure, settings.retry)))
  const clickhouse = ClickHouse.layer(settings.clickhouse.target, { faultControl: settings.clickhouse.faultControl })
  // One for both writers: the same user gets the same pseudonym in every table.
  const pseudonymisation = Pseudonymisation.make(settings.clickhouse.pseudonymiseKey)
  return Layer.mergeAll(
    AlertWriter.layer({ autoBlockSeverities: settings.postgres.autoBlockSeverities }),
    AnalyticsWriter.layer({ pseudonymisation }),
    OutboxRelay.layer({ ...settings.outbox, retry: settings.retry, pseudonymisation })
  ).pipe(
    // The clients stay visible to the daemon too: readiness probes them.
    Layer.provideMerge(Layer.merge(postgres, clickhouse)),
    // The tracer is provided to the daemon's own fibers too, not only to the stores' construction.
    Layer.provideMerge(
      Tracing.layer({ serviceName: settings.telemetry.serviceName, endpoint: settings.telemetry.otlpEndpoint })
    )
  )
}

/** What a caller running the daemon inside its own process (the demo) gets once it runs. */
export interface RunningDaemon {
  readonly health: Health.Health
  /** The HTTP endpoint's port (the one bound when configured as 0); undefined when it is off. */
  readonly httpPort: number | undefined
}

/**
 * The daemon, in the context of `storesLayer`: consumes until `stop` completes, then stops taking
 * records, finishes and commits the batches in flight, lets the relay finish its claimed batch and
 * closes its connections. Past `SENTINEL_SHUTDOWN_TIMEOUT_MS` the work in flight is abandoned
 * uncommitted (it is redone, idempotently, on the next start). `running`, when given, is completed
 * once it consumes.
 */
export const daemon = (
  settings: SentinelSettings,
  stop: Deferred.Deferred<void>,
  running?: Deferred.Deferred<RunningDaemon>
) =>
  Effect.gen(function*() {
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
    const breakers = [postgresGuard.breaker, clickhouseGuard.breaker]
    const health = yield* Health.make({
      interval: settings.http.probeInterval,
      // A loaded machine answers slowly, which is not the same as not at all.
      timeout: Duration.max(settings.http.probeInterval, Duration.seconds(5)),
      breakers,
      kafkaAdmin: yield* Effect.acquireRelease(
        Effect.sync(() => KafkaSource.kafkaClient(settings.kafka, true).admin()),
        (admin) => Effect.promise(() => admin.disconnect().catch(() => undefined))
      ),
      topics: KafkaSource.topicList(settings.kafka),
      consumerGroups: [settings.kafka.groupId, settings.kafka.analyticsGroupId]
    })
    const endpoint = settings.http.port === undefined
      ? undefined
      : yield* HttpEndpoint.make({ host: settings.http.host, port: settings.http.port }, health, breakers)
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
        ),
        health.reportFiber(`${path.name} path`)
      )
    const fibers = yield* Effect.all([
      Effect.fork(consume(settings.kafka.groupId, alertPath)),
      Effect.fork(consume(settings.kafka.analyticsGroupId, analyticsPath)),
      Effect.fork(
        supervised(
          "outbox relay",
          settings.supervision,
          relay.run(stop, clickhouseGuard.breaker),
          health.reportFiber("outbox relay")
        )
      )
    ])
    yield* Effect.logInfo("sentinel running")
    if (running !== undefined) yield* Deferred.succeed(running, { health, httpPort: endpoint?.port })
    const deadline = Deferred.await(stop).pipe(Effect.zipRight(Effect.sleep(settings.shutdownTimeout)))
    // The first fiber to give up (a crash loop) stops the daemon, which then exits non-zero.
    yield* Effect.all(fibers.map(Fiber.join), { concurrency: "unbounded", discard: true }).pipe(
      Effect.raceFirst(deadline)
    )
    yield* Effect.logInfo("sentinel stopped").pipe(
      Effect.annotateLogs({ shutdownTimeoutMs: Duration.toMillis(settings.shutdownTimeout) })
    )
    return 0
  }).pipe(Effect.scoped)

/**
 * `sentinel run`: the daemon until SIGTERM or SIGINT; exits 0 once stopped cleanly. The signals are
 * taken before the stores connect, so a stop during start-up (PostgreSQL still unreachable, say) ends
 * the start cleanly instead of killing the process by the signal's default action.
 */
export const runDaemon = (settings: SentinelSettings) =>
  Effect.gen(function*() {
    const stop = yield* Deferred.make<void>()
    // Run with the daemon's runtime, so the line goes through its logger.
    const runFork = Runtime.runFork(yield* Effect.runtime<never>())
    const requestStop = (signal: NodeJS.Signals) => {
      runFork(Effect.logInfo(`${signal} received: finishing the batches in flight`))
      runFork(Deferred.succeed(stop, undefined))
    }
    process.once("SIGTERM", requestStop)
    process.once("SIGINT", requestStop)
    const stores = yield* Layer.build(storesLayer(settings)).pipe(
      Effect.map(Option.some),
      // A connection attempt cannot be called off: left to end in the background, the process exiting anyway.
      Effect.disconnect,
      Effect.raceFirst(Effect.as(Deferred.await(stop), Option.none()))
    )
    if (Option.isNone(stores)) {
      yield* Effect.logInfo("sentinel stopped during start-up; nothing was consumed")
      return 0
    }
    return yield* daemon(settings, stop).pipe(Effect.provide(stores.value))
  }).pipe(Effect.scoped)

export const runCommand: Command = {
  summary: "run the daemon: consume, persist, relay the outbox",
  usage: "sentinel run [--print-config]\n" +
    "  --print-config    print the effective configuration (secrets masked) as JSON and exit, connecting to nothing",
  options: { "print-config": { type: "boolean" } },
  run: (settings, values) => (values["print-config"] === true ? printConfig : runDaemon(settings))
}
