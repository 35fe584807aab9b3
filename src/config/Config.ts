/**
 * Sentinel's one typed configuration, read from the environment (and an optional config file, see
 * ConfigFile.ts) and validated at start. A bad value stops the daemon with a line naming the
 * variable, what it got and what it expects. Service addresses use the stack's names
 * (KAFKA_BROKERS, DATABASE_URL, CLICKHOUSE_URL or CLICKHOUSE_PATH, OTEL_EXPORTER_OTLP_ENDPOINT);
 * the pipeline's own settings are SENTINEL_*.
 */
import {
  Config,
  ConfigError,
  ConfigProvider,
  ConfigProviderPathPatch,
  Duration,
  Effect,
  Either,
  HashSet,
  LogLevel,
  Option,
  Redacted
} from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import type { Severity } from "../contract/DetectionResult.ts"
import type { CircuitBreakerConfig } from "../resilience/CircuitBreaker.ts"
import type { RetryPolicy } from "../resilience/RetryPolicy.ts"
import { type ClickHouseTarget, targetFrom } from "../sinks/clickhouse/ClickHouse.ts"
import { maxTtlDays } from "../sinks/clickhouse/Migrations.ts"
import type { TlsFiles } from "./Tls.ts"

export interface Topics {
  readonly detections: string
  readonly metrics: string
  readonly transactions: string
  readonly audits: string
}

export const saslMechanisms = ["plain", "scram-sha-256", "scram-sha-512"] as const
export type SaslMechanism = typeof saslMechanisms[number]

export const postgresSslModes = ["disable", "require", "verify-full"] as const
/**
 * `require` encrypts without checking the server's certificate; `verify-full` checks it against the
 * CA (the system's, or `SENTINEL_PG_SSL_CA_FILE`) and that it names the host connected to.
 */
export type PostgresSslMode = typeof postgresSslModes[number]

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
    /** TLS to the brokers; undefined: plaintext. */
    readonly tls: (TlsFiles & { readonly rejectUnauthorized: boolean }) | undefined
    /** SASL authentication; undefined: none. */
    readonly sasl: {
      readonly mechanism: SaslMechanism
      readonly username: string
      readonly password: Redacted.Redacted
    } | undefined
  }
  readonly batch: {
    readonly maxRecords: number
    readonly maxWait: Duration.Duration
  }
  readonly postgres: {
    /** As given; its `ssl*` parameters are read into `ssl` (src/sinks/postgres/PgConnection.ts). */
    readonly url: Redacted.Redacted
    readonly ssl: { readonly mode: PostgresSslMode; readonly caFile: string | undefined }
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
    /** The HMAC key that pseudonymises user ids in ClickHouse (Pseudonymisation.ts); undefined: raw ids. */
    readonly pseudonymiseKey: Redacted.Redacted | undefined
  }
  readonly outbox: {
    readonly batchSize: number
    /** Claims the relay keeps in flight at once. */
    readonly concurrency: number
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
  readonly logLevel: LogLevel.LogLevel
  readonly telemetry: {
    readonly serviceName: string
    readonly otlpEndpoint: string | undefined
  }
  /** The daemon's HTTP endpoint: /metrics, /healthz, /readyz and the breaker controls. */
  readonly http: {
    readonly host: string
    /** 0 takes any free port (the one taken is logged); undefined turns the endpoint off. */
    readonly port: number | undefined
    /** How often readiness probes Kafka, PostgreSQL and ClickHouse; also each probe's timeout. */
    readonly probeInterval: Duration.Duration
  }
}

/**
 * Each variable's default as it would be written in the environment (undefined: none; the setting
 * is off or derived from another), filled in as the configuration below is built: what
 * `sentinel run --print-config` shows for a variable that is not set.
 */
const shownDefaults = new Map<string, string | undefined>()

export const defaultValues: ReadonlyMap<string, string | undefined> = shownDefaults

// Validation comes before the default: a default applies only to a missing variable, and the
// error of a present one keeps the variable's name.
const withDefault = <A>(name: string, fallback: A, shown: string = String(fallback)) => {
  shownDefaults.set(name, shown)
  return Config.withDefault(fallback)
}

const text = (name: string, fallback: string) => Config.string(name).pipe(withDefault(name, fallback))

const positiveInt = (name: string, fallback: number) =>
  Config.integer(name).pipe(
    Config.validate({ message: "expected a positive integer", validation: (n) => n > 0 }),
    withDefault(name, fallback)
  )

/** ClickHouse `DateTime` ends in 2106: a longer TTL would wrap around and expire every row at once. */
const ttlDays = (name: string, fallback: number) =>
  Config.integer(name).pipe(
    Config.validate({
      message: `expected a whole number of days from 1 to ${maxTtlDays}`,
      validation: (n) => n > 0 && n <= maxTtlDays
    }),
    withDefault(name, fallback)
  )

const share = (name: string, fallback: number) =>
  Config.number(name).pipe(
    Config.validate({ message: "expected a share between 0 and 1", validation: (n) => n >= 0 && n <= 1 }),
    withDefault(name, fallback)
  )

const flag = (name: string, fallback: boolean) => Config.boolean(name).pipe(withDefault(name, fallback))

const millis = (name: string, fallback: number) => positiveInt(name, fallback).pipe(Config.map(Duration.millis))

/** One of `values`, in any case. */
const oneOf = <const Values extends ReadonlyArray<string>>(name: string, values: Values) =>
  Config.string(name).pipe(
    Config.mapOrFail((raw) => {
      const value = values.find((v) => v === raw.trim().toLowerCase())
      return value === undefined
        ? Either.left(ConfigError.InvalidData([], `expected ${values.join(" | ")}, got "${raw}"`))
        : Either.right(value as Values[number])
    })
  )

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
    withDefault(name, parseSeverities(fallback), fallback)
  )

/** Unset is undefined; `shown` is the value an unset variable stands for, when there is one. */
const optional = <A>(name: string, config: Config.Config<A>, shown?: string) => {
  shownDefaults.set(name, shown)
  return Config.option(config).pipe(Config.map(Option.getOrUndefined))
}

const optionalString = (name: string, shown?: string) => optional(name, Config.nonEmptyString(name), shown)

const optionalSecret = (name: string) => optional(name, Config.nonEmptyString(name).pipe(Config.map(Redacted.make)))

/** A file the process can read, checked at start so a typo fails now rather than at the first connection. */
const readableFile = (name: string) =>
  optional(
    name,
    Config.nonEmptyString(name).pipe(
      Config.mapOrFail((file) => {
        try {
          fs.accessSync(file, fs.constants.R_OK)
          return fs.statSync(file).isFile()
            ? Either.right(path.resolve(file))
            : Either.left(ConfigError.InvalidData([], `${file} is not a file`))
        } catch (error) {
          return Either.left(ConfigError.InvalidData([], `cannot read ${file} (${(error as Error).message})`))
        }
      })
    )
  )

const invalid = (name: string, message: string) => Either.left(ConfigError.InvalidData([name], message))

const groupIds = Config.all({
  groupId: text("SENTINEL_GROUP_ID", "sentinel"),
  analyticsGroupId: optionalString("SENTINEL_ANALYTICS_GROUP_ID")
}).pipe(
  Config.map(({ analyticsGroupId, groupId }) => ({
    groupId,
    analyticsGroupId: analyticsGroupId ?? `${groupId}-analytics`
  }))
)

const kafkaTls = Config.all({
  enabled: flag("KAFKA_SSL", false),
  rejectUnauthorized: flag("KAFKA_SSL_REJECT_UNAUTHORIZED", true),
  caFile: readableFile("KAFKA_SSL_CA_FILE"),
  certFile: readableFile("KAFKA_SSL_CERT_FILE"),
  keyFile: readableFile("KAFKA_SSL_KEY_FILE")
}).pipe(
  Config.mapOrFail(({ enabled, ...tls }) => {
    const files = { KAFKA_SSL_CA_FILE: tls.caFile, KAFKA_SSL_CERT_FILE: tls.certFile, KAFKA_SSL_KEY_FILE: tls.keyFile }
    const given = Object.entries(files).find(([, file]) => file !== undefined)
    if (!enabled) {
      return given === undefined
        ? Either.right(undefined)
        : invalid(given[0], "set, but KAFKA_SSL is not true")
    }
    if ((tls.certFile === undefined) !== (tls.keyFile === undefined)) {
      return invalid(
        tls.certFile === undefined ? "KAFKA_SSL_CERT_FILE" : "KAFKA_SSL_KEY_FILE",
        "required with the other"
      )
    }
    return Either.right(tls)
  })
)

const kafkaSasl = Config.all({
  mechanism: optional("KAFKA_SASL_MECHANISM", oneOf("KAFKA_SASL_MECHANISM", saslMechanisms)),
  username: optionalString("KAFKA_SASL_USERNAME"),
  password: optionalSecret("KAFKA_SASL_PASSWORD")
}).pipe(
  Config.mapOrFail(({ mechanism, password, username }) => {
    if (mechanism === undefined) {
      return username === undefined && password === undefined
        ? Either.right(undefined)
        : invalid("KAFKA_SASL_MECHANISM", `expected ${saslMechanisms.join(" | ")} with a SASL user name and password`)
    }
    if (username === undefined) return invalid("KAFKA_SASL_USERNAME", `required with KAFKA_SASL_MECHANISM`)
    if (password === undefined) return invalid("KAFKA_SASL_PASSWORD", `required with KAFKA_SASL_MECHANISM`)
    return Either.right({ mechanism, username, password })
  })
)

const isPostgresUrl = (raw: string): boolean => {
  try {
    return /^postgres(ql)?:\/\//.test(raw) && new URL(raw).protocol !== ""
  } catch {
    return false
  }
}

/**
 * The server's URL and how to secure the connection: SENTINEL_PG_SSL, else the URL's `sslmode`
 * (libpq's name for it), else none; the CA: SENTINEL_PG_SSL_CA_FILE, else the URL's `sslrootcert`.
 */
const postgresConnection = Config.all({
  url: Config.string("DATABASE_URL").pipe(
    Config.validate({ message: "expected a postgres:// URL", validation: isPostgresUrl }),
    withDefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
  ),
  mode: optional("SENTINEL_PG_SSL", oneOf("SENTINEL_PG_SSL", postgresSslModes)),
  caFile: readableFile("SENTINEL_PG_SSL_CA_FILE")
}).pipe(
  Config.mapOrFail(({ caFile, mode, url: raw }) => {
    const url = new URL(raw)
    const urlMode = url.searchParams.get("sslmode") ?? undefined
    if (mode === undefined && urlMode !== undefined && !(postgresSslModes as ReadonlyArray<string>).includes(urlMode)) {
      return invalid(
        "DATABASE_URL",
        `sslmode=${urlMode} is not supported: use ${postgresSslModes.join(", ")} (or set SENTINEL_PG_SSL)`
      )
    }
    const clientCertificate = ["sslcert", "sslkey"].find((name) => url.searchParams.has(name))
    if (clientCertificate !== undefined) {
      return invalid("DATABASE_URL", `${clientCertificate} is not supported (client certificates)`)
    }
    const urlCa = url.searchParams.get("sslrootcert") ?? undefined
    if (caFile === undefined && urlCa !== undefined && !readable(urlCa)) {
      return invalid("DATABASE_URL", `cannot read sslrootcert ${urlCa}`)
    }
    const ssl = { mode: mode ?? (urlMode as PostgresSslMode | undefined) ?? "disable", caFile: caFile ?? urlCa }
    if (ssl.caFile !== undefined && ssl.mode !== "verify-full") {
      return invalid(caFile === undefined ? "DATABASE_URL" : "SENTINEL_PG_SSL_CA_FILE", "used only with verify-full")
    }
    return Either.right({ url: Redacted.make(raw), ssl })
  })
)

const readable = (file: string): boolean => {
  try {
    fs.accessSync(file, fs.constants.R_OK)
    return true
  } catch {
    return false
  }
}

/** The default chDB folder, beside the local stack's other data. */
export const defaultClickHousePath = path.resolve(".sentinel", "data", "clickhouse")

const clickhouseTarget = Config.all({
  CLICKHOUSE_URL: optional(
    "CLICKHOUSE_URL",
    Config.nonEmptyString("CLICKHOUSE_URL").pipe(
      Config.validate({ message: "expected an http:// or https:// URL", validation: (url) => /^https?:\/\//.test(url) })
    )
  ),
  CLICKHOUSE_PATH: optionalString("CLICKHOUSE_PATH", defaultClickHousePath),
  CLICKHOUSE_USER: optionalString("CLICKHOUSE_USER", "default"),
  CLICKHOUSE_PASSWORD: optionalString("CLICKHOUSE_PASSWORD"),
  CLICKHOUSE_DATABASE: optionalString("CLICKHOUSE_DATABASE", "default"),
  CLICKHOUSE_CA_FILE: readableFile("CLICKHOUSE_CA_FILE"),
  CLICKHOUSE_CERT_FILE: readableFile("CLICKHOUSE_CERT_FILE"),
  CLICKHOUSE_KEY_FILE: readableFile("CLICKHOUSE_KEY_FILE")
}).pipe(
  Config.mapOrFail((env) => {
    const files = (["CLICKHOUSE_CA_FILE", "CLICKHOUSE_CERT_FILE", "CLICKHOUSE_KEY_FILE"] as const)
      .filter((name) => env[name] !== undefined)
    if (files.length > 0 && !env.CLICKHOUSE_URL?.startsWith("https://")) {
      return invalid(files[0]!, "used only with an https:// CLICKHOUSE_URL")
    }
    if ((env.CLICKHOUSE_CERT_FILE === undefined) !== (env.CLICKHOUSE_KEY_FILE === undefined)) {
      return invalid(
        env.CLICKHOUSE_CERT_FILE === undefined ? "CLICKHOUSE_CERT_FILE" : "CLICKHOUSE_KEY_FILE",
        "required with the other"
      )
    }
    // The client's mutual TLS takes the CA with the client certificate, never alone.
    if (env.CLICKHOUSE_CERT_FILE !== undefined && env.CLICKHOUSE_CA_FILE === undefined) {
      return invalid("CLICKHOUSE_CA_FILE", "required with CLICKHOUSE_CERT_FILE")
    }
    return Either.right(targetFrom(env, defaultClickHousePath))
  })
)

/** HMAC-SHA256 keys shorter than its 32-byte output weaken it; `openssl rand -hex 32` makes a good one. */
export const minPseudonymiseKeyBytes = 32

const pseudonymiseKey = optional(
  "SENTINEL_PSEUDONYMISE_KEY",
  Config.nonEmptyString("SENTINEL_PSEUDONYMISE_KEY").pipe(
    Config.validate({
      message: `expected at least ${minPseudonymiseKeyBytes} bytes (e.g. \`openssl rand -hex 32\`)`,
      validation: (key) => Buffer.byteLength(key) >= minPseudonymiseKeyBytes
    }),
    Config.map(Redacted.make)
  )
)

const logLevels = {
  all: LogLevel.All,
  trace: LogLevel.Trace,
  debug: LogLevel.Debug,
  info: LogLevel.Info,
  warning: LogLevel.Warning,
  error: LogLevel.Error,
  fatal: LogLevel.Fatal,
  none: LogLevel.None
} as const

const logLevel = oneOf("SENTINEL_LOG_LEVEL", Object.keys(logLevels) as Array<keyof typeof logLevels>).pipe(
  withDefault("SENTINEL_LOG_LEVEL", "info" as const),
  Config.map((level) => logLevels[level])
)

export const config: Config.Config<SentinelSettings> = Config.all({
  kafka: Config.all({
    brokers: Config.string("KAFKA_BROKERS").pipe(
      Config.validate({ message: "expected host:port[,host:port…]", validation: (s) => brokerList(s).length > 0 }),
      withDefault("KAFKA_BROKERS", "127.0.0.1:9092"),
      Config.map(brokerList)
    ),
    clientId: text("KAFKA_CLIENT_ID", "sentinel"),
    topics: Config.all({
      detections: text("SENTINEL_TOPIC_DETECTIONS", "fraud-detection-results"),
      metrics: text("SENTINEL_TOPIC_METRICS", "performance-metrics"),
      transactions: text("SENTINEL_TOPIC_TRANSACTIONS", "transaction-records"),
      audits: text("SENTINEL_TOPIC_AUDITS", "audit-events")
    }),
    partitions: positiveInt("SENTINEL_TOPIC_PARTITIONS", 6),
    // Unset: twice the batch size (below), room for the next batch while one is written. More only
    // costs memory: with batches of 5,000, 20,000 measured the same records/s as 10,000 and a peak
    // RSS 60–100 MB higher on average (scripts/bench.ts, two runs each).
    maxInFlight: Config.integer("SENTINEL_MAX_IN_FLIGHT").pipe(
      Config.validate({ message: "expected a positive integer", validation: (n) => n > 0 }),
      withDefault("SENTINEL_MAX_IN_FLIGHT", undefined as number | undefined, "2 × SENTINEL_BATCH_MAX_RECORDS")
    ),
    tls: kafkaTls,
    sasl: kafkaSasl
  }).pipe(Config.zipWith(groupIds, (kafka, groups) => ({ ...kafka, ...groups }))),
  batch: Config.all({
    maxRecords: positiveInt("SENTINEL_BATCH_MAX_RECORDS", 5_000),
    maxWait: millis("SENTINEL_BATCH_MAX_WAIT_MS", 200)
  }),
  postgres: Config.all({
    maxConnections: positiveInt("SENTINEL_PG_MAX_CONNECTIONS", 8),
    role: text("SENTINEL_PG_ROLE", "sentinel_writer").pipe(Config.map((role) => (role === "" ? undefined : role))),
    autoBlockSeverities: severityList("SENTINEL_AUTO_BLOCK_SEVERITIES", "CRITICAL")
  }).pipe(Config.zipWith(postgresConnection, (postgres, connection) => ({ ...connection, ...postgres }))),
  clickhouse: Config.all({
    target: clickhouseTarget,
    analyticsTtlDays: ttlDays("SENTINEL_CH_ANALYTICS_TTL_DAYS", 365),
    metricsTtlDays: ttlDays("SENTINEL_CH_METRICS_TTL_DAYS", 90),
    faultControl: optionalString("SENTINEL_CLICKHOUSE_FAULTS"),
    pseudonymiseKey
  }),
  outbox: Config.all({
    batchSize: positiveInt("SENTINEL_OUTBOX_BATCH_SIZE", 5_000),
    concurrency: positiveInt("SENTINEL_OUTBOX_CONCURRENCY", 2),
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
      withDefault("SENTINEL_RETRY_FACTOR", 2)
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
  logLevel,
  telemetry: Config.all({
    serviceName: text("OTEL_SERVICE_NAME", "sentinel"),
    otlpEndpoint: optionalString("OTEL_EXPORTER_OTLP_ENDPOINT")
  }),
  http: Config.all({
    host: text("SENTINEL_HTTP_HOST", "127.0.0.1"),
    port: Config.string("SENTINEL_HTTP_PORT").pipe(
      Config.validate({
        message: "expected a port number from 0 to 65535, or \"off\"",
        validation: (raw) => raw === "off" || (/^\d+$/.test(raw) && Number(raw) <= 65_535)
      }),
      withDefault("SENTINEL_HTTP_PORT", "9464"),
      Config.map((raw) => (raw === "off" ? undefined : Number(raw)))
    ),
    probeInterval: millis("SENTINEL_HEALTH_INTERVAL_MS", 2_000)
  })
}).pipe(Config.map((settings) => ({
  ...settings,
  kafka: { ...settings.kafka, maxInFlight: settings.kafka.maxInFlight ?? 2 * settings.batch.maxRecords }
})))

/**
 * The variables the configuration reads, in the order it reads them: found by loading it from a
 * source that has none (so every default applies and every variable is asked for).
 */
export const variableNames: ReadonlyArray<string> = (() => {
  const asked = new Set<string>()
  const nothing = ConfigProvider.fromFlat(ConfigProvider.makeFlat({
    load: (path) => {
      asked.add(path.join("."))
      return Effect.fail(ConfigError.MissingData([...path], "unset"))
    },
    enumerateChildren: () => Effect.succeed(HashSet.empty()),
    patch: ConfigProviderPathPatch.empty
  }))
  Effect.runSync(Effect.either(Effect.withConfigProvider(config, nothing)))
  return [...asked]
})()

/**
 * One line per problem, e.g. `SENTINEL_BATCH_MAX_RECORDS: expected a positive integer (got "0")`.
 * A variable the environment lacks but the config file has bad (or the other way round) is an
 * `Or` of "missing" and the real problem: only the problem is told.
 */
export const describeConfigError = (error: ConfigError.ConfigError): string =>
  ConfigError.reduceWithContext(withoutMissingAlternatives(error), undefined, {
    andCase: (_, left: Array<string>, right: Array<string>) => [...left, ...right],
    orCase: (_, left: Array<string>, right: Array<string>) => [...left, ...right],
    invalidDataCase: (_, path, message) => [`${path.join(".")}: ${message}`],
    missingDataCase: (_, path, message) => [`${path.join(".")}: missing (${message})`],
    sourceUnavailableCase: (_, path, message) => [`${path.join(".")}: ${message}`],
    unsupportedCase: (_, path, message) => [`${path.join(".")}: ${message}`]
  }).join("\n")

const withoutMissingAlternatives = (error: ConfigError.ConfigError): ConfigError.ConfigError => {
  switch (error._op) {
    case "And":
      return ConfigError.And(withoutMissingAlternatives(error.left), withoutMissingAlternatives(error.right))
    case "Or":
      return ConfigError.isMissingDataOnly(error.left)
        ? withoutMissingAlternatives(error.right)
        : ConfigError.isMissingDataOnly(error.right)
        ? withoutMissingAlternatives(error.left)
        : ConfigError.Or(withoutMissingAlternatives(error.left), withoutMissingAlternatives(error.right))
    default:
      return error
  }
}

export const load: Effect.Effect<SentinelSettings, ConfigError.ConfigError> = config
