/**
 * The daemon's health: whether it is alive, and whether it is ready — able to do its main job,
 * turning Kafka records into durable PostgreSQL rows. A background probe checks Kafka (brokers and
 * each consumer group's lag), PostgreSQL and ClickHouse every few seconds; readiness joins the last
 * probes with the breakers' states and the supervised fibers' statuses.
 *
 * Ready means: Kafka and PostgreSQL answer, the PostgreSQL breaker is not open, and no supervised
 * fiber is restarting or has given up (a crash loop is not ready). ClickHouse going away only
 * degrades the daemon: alerts keep landing in PostgreSQL and analytics wait in Kafka.
 */
import { SqlClient } from "@effect/sql"
import { Clock, Duration, Effect, Metric, MetricLabel, Option, Ref, Schedule, type Scope } from "effect"
import type { Admin } from "kafkajs"
import { OutboxRelay } from "../outbox/OutboxRelay.ts"
import type { CircuitBreaker, State } from "../resilience/CircuitBreaker.ts"
import type { FiberStatus } from "../resilience/Supervisor.ts"
import { ClickHouse } from "../sinks/clickhouse/ClickHouse.ts"
import * as ConsumerLag from "../source/ConsumerLag.ts"
import * as Metrics from "./Metrics.ts"

export interface ComponentHealth {
  readonly status: "up" | "down" | "unknown"
  /** Epoch milliseconds of the probe. */
  readonly checkedAt?: number
  readonly latencyMs?: number
  readonly error?: string
  readonly [detail: string]: unknown
}

export interface Readiness {
  readonly ready: boolean
  /** `ready`, `degraded` (ready, but ClickHouse is away), or `not ready` with the reasons. */
  readonly status: "ready" | "degraded" | "not ready"
  readonly reasons: ReadonlyArray<string>
  readonly components: {
    readonly kafka: ComponentHealth
    readonly postgres: ComponentHealth
    readonly clickhouse: ComponentHealth
    readonly outbox: ComponentHealth
    readonly breakers: Readonly<Record<string, { readonly state: State }>>
    readonly fibers: Readonly<Record<string, FiberStatus>>
  }
  /** Throughput and writes so far, from the daemon's metrics. */
  readonly performance: Readonly<Record<string, unknown>>
}

export interface Health {
  /** Where a supervised fiber reports its status (src/resilience/Supervisor.ts). */
  readonly reportFiber: (name: string) => (status: FiberStatus) => Effect.Effect<void>
  readonly readiness: Effect.Effect<Readiness>
  readonly liveness: Effect.Effect<{ readonly status: "alive"; readonly uptimeSeconds: number; readonly pid: number }>
}

export interface HealthConfig {
  readonly interval: Duration.DurationInput
  /** A probe that takes longer has failed. */
  readonly timeout: Duration.DurationInput
  readonly breakers: ReadonlyArray<CircuitBreaker>
  /** Disconnected by the caller. */
  readonly kafkaAdmin: Admin
  readonly topics: ReadonlyArray<string>
  readonly consumerGroups: ReadonlyArray<string>
}

const unknown: ComponentHealth = { status: "unknown" }

const messageOf = (error: unknown) => error instanceof Error ? error.message : String(error)

/** Lag of each group, its partitions' also set as `sentinel_consumer_lag_records`. */
const consumerLag = async (admin: Admin, topics: ReadonlyArray<string>, groups: ReadonlyArray<string>) => {
  const lags = await ConsumerLag.consumerLag(admin, topics, groups)
  for (const { behind, group, partition, topic } of lags) {
    Metrics.consumerLag.unsafeUpdate(behind, [
      MetricLabel.make("group", group),
      MetricLabel.make("topic", topic),
      MetricLabel.make("partition", String(partition))
    ])
  }
  return Object.fromEntries(groups.map((group) => [group, ConsumerLag.totalLag(lags, group)]))
}

const counterTotal = (metric: Metric.Metric.Counter<number>, labels: ReadonlyArray<MetricLabel.MetricLabel>) =>
  metric.unsafeValue(labels).count

export const make = (
  config: HealthConfig
): Effect.Effect<Health, never, Scope.Scope | SqlClient.SqlClient | ClickHouse | OutboxRelay> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const clickhouse = yield* ClickHouse
    const relay = yield* OutboxRelay
    const startedAt = yield* Clock.currentTimeMillis
    const fibers = yield* Ref.make<Record<string, FiberStatus>>({})
    const probes = yield* Ref.make({ kafka: unknown, postgres: unknown, clickhouse: unknown, outbox: unknown })

    /** Runs `check` within the timeout; its result, with the time it took, is the component's health. */
    const probe = <A extends Record<string, unknown>>(check: Effect.Effect<A, unknown>) =>
      Effect.gen(function*() {
        const checkedAt = yield* Clock.currentTimeMillis
        const outcome = yield* check.pipe(
          Effect.timeoutFail({
            duration: config.timeout,
            onTimeout: () => new Error(`no answer within ${Duration.format(Duration.decode(config.timeout))}`)
          }),
          Effect.either
        )
        const latencyMs = (yield* Clock.currentTimeMillis) - checkedAt
        return outcome._tag === "Right"
          ? { status: "up", checkedAt, latencyMs, ...outcome.right } as ComponentHealth
          : { status: "down", checkedAt, latencyMs, error: messageOf(outcome.left) } as ComponentHealth
      })

    const kafka = probe(Effect.tryPromise(async () => {
      // A no-op once connected; after a broker outage it connects again.
      await config.kafkaAdmin.connect()
      const cluster = await config.kafkaAdmin.describeCluster()
      const lag = await consumerLag(config.kafkaAdmin, config.topics, config.consumerGroups)
      return { brokers: cluster.brokers.length, controller: cluster.controller, lag }
    }))

    const postgres = probe(Effect.map(
      sql<{ connections: number; server_version: string }>`
        SELECT (SELECT count(*)::int FROM pg_stat_activity WHERE application_name = 'sentinel') AS connections,
               current_setting('server_version') AS server_version`,
      ([row]) => ({ connections: row?.connections, serverVersion: row?.server_version })
    ))

    const clickhouseProbe = probe(Effect.tryPromise(async () => {
      const ping = await clickhouse.ping()
      if (!ping.success) throw ping.error
      return {}
    }))

    const outbox = probe(Effect.map(relay.backlog, (backlog) => {
      const oldestSeconds = Option.match(backlog.oldest, { onNone: () => 0, onSome: Duration.toSeconds })
      Metrics.outboxBacklog.unsafeUpdate(backlog.pending, [])
      Metrics.outboxOldestAge.unsafeUpdate(oldestSeconds, [])
      return { pending: backlog.pending, oldestSeconds }
    }))

    const round = Effect.all({ kafka, postgres, clickhouse: clickhouseProbe, outbox }, { concurrency: "unbounded" })
      .pipe(Effect.flatMap((result) => Ref.set(probes, result)))

    const performance = Effect.map(Clock.currentTimeMillis, (now) => {
      const uptimeSeconds = (now - startedAt) / 1000
      const batches = Object.fromEntries(["alerts", "analytics"].map((path) => {
        const labels = [MetricLabel.make("path", path)]
        const count = counterTotal(Metrics.batchesTotal, labels)
        return [path, { batches: count, batchesPerSecond: uptimeSeconds > 0 ? count / uptimeSeconds : 0 }]
      }))
      const writes = Object.fromEntries(["postgres", "clickhouse"].map((sink) => {
        const histogram = Metrics.sinkWriteDuration.unsafeValue([MetricLabel.make("sink", sink)])
        return [sink, {
          writes: histogram.count,
          meanWriteMs: histogram.count === 0 ? 0 : (histogram.sum / histogram.count) * 1000,
          maxWriteMs: histogram.count === 0 ? 0 : histogram.max * 1000
        }]
      }))
      return { uptimeSeconds, paths: batches, writes, outboxRelayed: counterTotal(Metrics.outboxRelayed, []) }
    })

    const readiness = Effect.gen(function*() {
      const last = yield* Ref.get(probes)
      const fiberStatus = yield* Ref.get(fibers)
      const breakers: Record<string, { state: State }> = {}
      for (const breaker of config.breakers) breakers[breaker.name] = { state: yield* breaker.state }
      const reasons = [
        ...(last.kafka.status === "up" ? [] : [`kafka is ${last.kafka.status}`]),
        ...(last.postgres.status === "up" ? [] : [`postgres is ${last.postgres.status}`]),
        ...(breakers.postgres?.state === "open" ? ["the postgres circuit breaker is open"] : []),
        ...Object.entries(fiberStatus)
          .filter(([, status]) => status.state === "restarting" || status.state === "failed")
          .map(([name, status]) => `${name} is ${status.state} (${status.restarts} restarts: ${status.lastError})`)
      ]
      const degraded = last.clickhouse.status !== "up" || breakers.clickhouse?.state === "open"
      const ready = reasons.length === 0
      Metrics.ready.unsafeUpdate(ready ? 1 : 0, [])
      return {
        ready,
        status: ready ? (degraded ? "degraded" : "ready") : "not ready",
        reasons,
        components: { ...last, breakers, fibers: fiberStatus },
        performance: yield* performance
      } satisfies Readiness
    })

    yield* round.pipe(
      Effect.zipRight(readiness),
      Effect.repeat(Schedule.spaced(config.interval)),
      // Probes every few seconds are not work anyone wants to find in Jaeger.
      Effect.withTracerEnabled(false),
      Effect.forkScoped
    )

    return {
      reportFiber: (name) => (status) => Ref.update(fibers, (all) => ({ ...all, [name]: status })),
      readiness,
      liveness: Effect.map(Clock.currentTimeMillis, (now) => ({
        status: "alive" as const,
        uptimeSeconds: (now - startedAt) / 1000,
        pid: process.pid
      }))
    }
  })
