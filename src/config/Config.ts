/**
 * Sentinel's one typed configuration, read from the environment and validated at start. A bad
 * value stops the daemon with a line naming the variable, what it got and what it expects.
 * Service addresses use the stack's names (KAFKA_BROKERS, DATABASE_URL, CLICKHOUSE_URL or
 * CLICKHOUSE_PATH, OTEL_EXPORTER_OTLP_ENDPOINT); the pipeline's own settings are SENTINEL_*.
 */
import { Config, ConfigError, Duration, Effect, Either, Option, Redacted } from "effect"
import * as path from "node:path"
import type { Severity } from "../contract/DetectionResult.ts"
import type { CircuitBreakerConfig } from "../resilience/CircuitBreaker.ts"
import type { RetryPolicy } from "../resilience/RetryPolicy.ts"
import { type ClickHouseTarget, targetFrom } from "../sinks/clickhouse/ClickHouse.ts"
import { maxTtlDays } from "../sinks/clickhouse/Migrations.ts"

export interface Topics {
  readonly detections: string
  readonly metrics: string
  readonly transactions: string
  readonly audits: string
}

export interface SentinelSettings {
  readonly kafka: {
    readonly brokers: ReadonlyArray<string>
    readonly clientId: string
    /** The alert path's consumer group (PostgreSQL). */
    readonly groupId: string
    /** The analytics path's consumer group (ClickHouse): its own offsets, so either store may lag. */
    readonly analyticsGroupId: string
    readonly topics: Topics
    /** Partitions of the topics Sentinel creates when they are missing. */
    readonly partitions: number
    /** Records taken from Kafka but not yet durable, at most: the bound on the daemon's memory. */
    readonly maxInFlight: number
  }
  readonly batch: {
    readonly maxRecords: number
    readonly maxWait: Duration.Duration
  }
  readonly postgres: {
    readonly url: Redacted.Redacted
    readonly maxConnections: number
    /** The role every session runs as (least privilege); undefined keeps the login role. */
    readonly role: string | undefined
    readonly autoBlockSeverities: ReadonlyArray<Severity>
  }
  readonly clickhouse: {
    readonly target: ClickHouseTarget
    readonly analyticsTtlDays: number
    readonly metricsTtlDays: number
    /** Outage drills: a control file that makes ClickHouse calls fail or hang (FaultInjection.ts). */
    readonly faultControl: string | undefined
  }
  readonly outbox: {
    readonly batchSize: number
    readonly pollInterval: Duration.Duration
    readonly leaseDuration: Duration.Duration
    readonly retention: Duration.Duration
  }
  /** Retries of a store's transient failures (src/resilience/RetryPolicy.ts). */
  readonly retry: RetryPolicy
  /** One breaker per store, both with these settings (src/resilience/CircuitBreaker.ts). */
  readonly breaker: Omit<CircuitBreakerConfig, "isFailure">
  /** Restarts of a crashed fiber; see src/resilience/Supervisor.ts. */
  readonly supervision: {
    readonly maxRestarts: number
    readonly window: Duration.Duration
    readonly backoff: Duration.Duration
  }
  /** How long one write to a store may take before it is abandoned as a transient failure. */
  readonly sinkTimeout: Duration.Duration
  /** How long a stop may take to finish the batch in flight before it is abandoned. */
  readonly shutdownTimeout: Duration.Duration
  readonly telemetry: {
    readonly serviceName: string
    readonly otlpEndpoint: string | undefined
  }
  /** The daemon's HTTP endpoint: /metrics, /healthz, /readyz and the breaker controls. */
  readonly http: {
    readonly host: string
    /** 0 takes any free port (the one taken is logged); undefined turns the endpoint off. */
    readonly port: number | undefined
  }
}

// Validation comes before the default: a default applies only to a missing variable, and the
// error of a present one keeps the variable's name.
const positiveInt = (name: string, fallback: number) =>
  Config.integer(name).pipe(
    Config.validate({ message: "expected a positive integer", validation: (n) => n > 0 }),
    Config.withDefault(fallback)
  )

/** ClickHouse `DateTime` ends in 2106: a longer TTL would wrap around and expire every row at once. */
const ttlDays = (name: string, fallback: number) =>
  Config.integer(name).pipe(
    Config.validate({
      message: `expected a whole number of days from 1 to ${maxTtlDays}`,
      validation: (n) => n > 0 && n <= maxTtlDays
    }),
    Config.withDefault(fallback)
  )

const share = (name: string, fallback: number) =>
  Config.number(name).pipe(
    Config.validate({ message: "expected a share between 0 and 1", validation: (n) => n >= 0 && n <= 1 }),
    Config.withDefault(fallback)
  )

const millis = (name: string, fallback: number) => positiveInt(name, fallback).pipe(Config.map(Duration.millis))

const severities = ["MINIMAL", "LOW", "MEDIUM", "HIGH", "CRITICAL"] as const

const parseSeverities = (raw: string): ReadonlyArray<Severity> =>
  raw.split(",").map((s) => s.trim().toUpperCase()).filter((s) => s !== "") as ReadonlyArray<Severity>

/** `host:port` entries of a comma-separated list; empty when any entry is not one. */
const brokerList = (raw: string): ReadonlyArray<string> => {
  const brokers = raw.split(",").map((b) => b.trim()).filter((b) => b !== "")
  return brokers.every((b) => /^[^:\s]+:\d+$/.test(b)) ? brokers : []
}

const severityList = (name: string, fallback: string) =>
  Config.string(name).pipe(
    Config.mapOrFail((raw) => {
      const items = parseSeverities(raw)
      const bad = items.filter((s) => !(severities as ReadonlyArray<string>).includes(s))
      return bad.length === 0
        ? Either.right(items)
        : Either.left(
          ConfigError.InvalidData(
            [],
            `expected a comma-separated list of ${severities.join("|")}, got ${bad.join(",")}`
          )
        )
    }),
    Config.withDefault(parseSeverities(fallback))
  )

const optionalString = (name: string) =>
  Config.option(Config.nonEmptyString(name)).pipe(Config.map(Option.getOrUndefined))

const groupIds = Config.all({
  groupId: Config.string("SENTINEL_GROUP_ID").pipe(Config.withDefault("sentinel")),
  analyticsGroupId: optionalString("SENTINEL_ANALYTICS_GROUP_ID")
}).pipe(
  Config.map(({ analyticsGroupId, groupId }) => ({
    groupId,
    analyticsGroupId: analyticsGroupId ?? `${groupId}-analytics`
  }))
)

/** The default chDB folder, beside the local stack's other data. */
export const defaultClickHousePath = path.resolve(".sentinel", "data", "clickhouse")

export const config: Config.Config<SentinelSettings> = Config.all({
  kafka: Config.all({
    brokers: Config.string("KAFKA_BROKERS").pipe(
      Config.validate({ message: "expected host:port[,host:port…]", validation: (s) => brokerList(s).length > 0 }),
      Config.withDefault("127.0.0.1:9092"),
      Config.map(brokerList)
    ),
    clientId: Config.string("KAFKA_CLIENT_ID").pipe(Config.withDefault("sentinel")),
    topics: Config.all({
      detections: Config.string("SENTINEL_TOPIC_DETECTIONS").pipe(Config.withDefault("fraud-detection-results")),
      metrics: Config.string("SENTINEL_TOPIC_METRICS").pipe(Config.withDefault("performance-metrics")),
      transactions: Config.string("SENTINEL_TOPIC_TRANSACTIONS").pipe(Config.withDefault("transaction-records")),
      audits: Config.string("SENTINEL_TOPIC_AUDITS").pipe(Config.withDefault("audit-events"))
    }),
    partitions: positiveInt("SENTINEL_TOPIC_PARTITIONS", 6),
    maxInFlight: positiveInt("SENTINEL_MAX_IN_FLIGHT", 20_000)
  }).pipe(Config.zipWith(groupIds, (kafka, groups) => ({ ...kafka, ...groups }))),
  batch: Config.all({
    maxRecords: positiveInt("SENTINEL_BATCH_MAX_RECORDS", 2_000),
    maxWait: millis("SENTINEL_BATCH_MAX_WAIT_MS", 200)
  }),
  postgres: Config.all({
    url: Config.string("DATABASE_URL").pipe(
      Config.validate({ message: "expected a postgres:// URL", validation: (url) => /^postgres(ql)?:\/\//.test(url) }),
      Config.withDefault("postgres://postgres@127.0.0.1:5432/postgres"),
      Config.map(Redacted.make)
    ),
    maxConnections: positiveInt("SENTINEL_PG_MAX_CONNECTIONS", 8),
    role: Config.string("SENTINEL_PG_ROLE").pipe(
      Config.withDefault("sentinel_writer"),
      Config.map((role) => (role === "" ? undefined : role))
    ),
    autoBlockSeverities: severityList("SENTINEL_AUTO_BLOCK_SEVERITIES", "CRITICAL")
  }),
  clickhouse: Config.all({
    target: Config.all({
      CLICKHOUSE_URL: optionalString("CLICKHOUSE_URL"),
      CLICKHOUSE_PATH: optionalString("CLICKHOUSE_PATH"),
      CLICKHOUSE_USER: optionalString("CLICKHOUSE_USER"),
      CLICKHOUSE_PASSWORD: optionalString("CLICKHOUSE_PASSWORD"),
      CLICKHOUSE_DATABASE: optionalString("CLICKHOUSE_DATABASE")
    }).pipe(Config.map((env) => targetFrom(env, defaultClickHousePath))),
    analyticsTtlDays: ttlDays("SENTINEL_CH_ANALYTICS_TTL_DAYS", 365),
    metricsTtlDays: ttlDays("SENTINEL_CH_METRICS_TTL_DAYS", 90),
    faultControl: optionalString("SENTINEL_CLICKHOUSE_FAULTS")
  }),
  outbox: Config.all({
    batchSize: positiveInt("SENTINEL_OUTBOX_BATCH_SIZE", 5_000),
    pollInterval: millis("SENTINEL_OUTBOX_POLL_MS", 250),
    leaseDuration: millis("SENTINEL_OUTBOX_LEASE_MS", 30_000),
    retention: positiveInt("SENTINEL_OUTBOX_RETENTION_HOURS", 24).pipe(Config.map(Duration.hours))
  }),
  shutdownTimeout: millis("SENTINEL_SHUTDOWN_TIMEOUT_MS", 30_000),
  sinkTimeout: millis("SENTINEL_SINK_TIMEOUT_MS", 30_000),
  retry: Config.all({
    initialDelay: millis("SENTINEL_RETRY_INITIAL_MS", 100),
    maxDelay: millis("SENTINEL_RETRY_MAX_DELAY_MS", 10_000),
    maxElapsed: millis("SENTINEL_RETRY_MAX_ELAPSED_MS", 300_000),
    factor: Config.number("SENTINEL_RETRY_FACTOR").pipe(
      Config.validate({ message: "expected a number of at least 1", validation: (n) => n >= 1 }),
      Config.withDefault(2)
    )
  }),
  breaker: Config.all({
    windowSize: positiveInt("SENTINEL_BREAKER_WINDOW", 20),
    minimumCalls: positiveInt("SENTINEL_BREAKER_MIN_CALLS", 5),
    failureRateThreshold: share("SENTINEL_BREAKER_FAILURE_RATE", 0.5),
    slowCallRateThreshold: share("SENTINEL_BREAKER_SLOW_CALL_RATE", 0.8),
    slowCallDuration: millis("SENTINEL_BREAKER_SLOW_CALL_MS", 10_000),
    openDuration: millis("SENTINEL_BREAKER_OPEN_MS", 1_000),
    maxOpenDuration: millis("SENTINEL_BREAKER_MAX_OPEN_MS", 15_000),
    halfOpenMaxProbes: positiveInt("SENTINEL_BREAKER_HALF_OPEN_PROBES", 1),
    halfOpenSuccessesToClose: positiveInt("SENTINEL_BREAKER_SUCCESSES_TO_CLOSE", 1)
  }),
  supervision: Config.all({
    maxRestarts: positiveInt("SENTINEL_MAX_RESTARTS", 5),
    window: millis("SENTINEL_RESTART_WINDOW_MS", 60_000),
    backoff: millis("SENTINEL_RESTART_BACKOFF_MS", 1_000)
  }),
  telemetry: Config.all({
    serviceName: Config.string("OTEL_SERVICE_NAME").pipe(Config.withDefault("sentinel")),
    otlpEndpoint: optionalString("OTEL_EXPORTER_OTLP_ENDPOINT")
  }),
  http: Config.all({
    host: Config.string("SENTINEL_HTTP_HOST").pipe(Config.withDefault("127.0.0.1")),
    port: Config.string("SENTINEL_HTTP_PORT").pipe(
      Config.validate({
        message: "expected a port number from 0 to 65535, or \"off\"",
        validation: (raw) => raw === "off" || (/^\d+$/.test(raw) && Number(raw) <= 65_535)
      }),
      Config.withDefault("9464"),
      Config.map((raw) => (raw === "off" ? undefined : Number(raw)))
    )
  })
})

/** One line per problem, e.g. `SENTINEL_BATCH_MAX_RECORDS: expected a positive integer (got "0")`. */
export const describeConfigError = (error: ConfigError.ConfigError): string =>
  ConfigError.reduceWithContext(error, undefined, {
    andCase: (_, left: Array<string>, right: Array<string>) => [...left, ...right],
    orCase: (_, left: Array<string>, right: Array<string>) => [...left, ...right],
    invalidDataCase: (_, path, message) => [`${path.join(".")}: ${message}`],
    missingDataCase: (_, path, message) => [`${path.join(".")}: missing (${message})`],
    sourceUnavailableCase: (_, path, message) => [`${path.join(".")}: ${message}`],
    unsupportedCase: (_, path, message) => [`${path.join(".")}: ${message}`]
  }).join("\n")

export const load: Effect.Effect<SentinelSettings, ConfigError.ConfigError> = config
