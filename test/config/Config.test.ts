import { ConfigProvider, Duration, Effect, Either, LogLevel, Redacted } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { defaultValues, describeConfigError, load, variableNames } from "../../src/config/Config.ts"

const loadFrom = (env: Record<string, string>) =>
  Effect.runSync(Effect.either(Effect.withConfigProvider(load, ConfigProvider.fromMap(new Map(Object.entries(env))))))

/** The problems `env` has, one line each, sorted. */
const problems = (env: Record<string, string>): ReadonlyArray<string> => {
  const result = loadFrom(env)
  if (Either.isRight(result)) throw new Error("expected a configuration error")
  return describeConfigError(result.left).split("\n").sort()
}

const folder = fs.mkdtempSync(path.join(os.tmpdir(), "sentinel-config-"))
/** A readable file (certificate files are only checked to be readable files at start). */
const file = (name: string) => {
  const full = path.join(folder, name)
  fs.writeFileSync(full, `${name}\n`)
  return full
}
const missing = path.join(folder, "missing.pem")

describe("Config", () => {
  it("has a default for every setting", () => {
    const settings = Either.getOrThrow(loadFrom({}))
    expect(settings.kafka.brokers).toEqual(["127.0.0.1:9092"])
    expect(settings.kafka.groupId).toBe("sentinel")
    expect(settings.kafka.analyticsGroupId).toBe("sentinel-analytics")
    expect(settings.kafka.topics).toEqual({
      detections: "fraud-detection-results",
      metrics: "performance-metrics",
      transactions: "transaction-records",
      audits: "audit-events"
    })
    expect(settings.postgres.autoBlockSeverities).toEqual(["CRITICAL"])
    expect(settings.postgres.role).toBe("sentinel_writer")
    expect(settings.clickhouse.target._tag).toBe("Embedded")
    expect(Duration.toMillis(settings.batch.maxWait)).toBe(200)
    expect(settings.batch.maxRecords).toBe(5_000)
    expect(settings.kafka.maxInFlight).toBe(10_000) // twice the batch size
    expect(settings.kafka.tls).toBeUndefined()
    expect(settings.kafka.sasl).toBeUndefined()
    expect(settings.postgres.ssl).toEqual({ mode: "disable", caFile: undefined })
    expect(settings.clickhouse.pseudonymiseKey).toBeUndefined()
    expect(settings.logLevel).toBe(LogLevel.Info)
  })

  it("knows every variable it reads, with its default (what --print-config shows)", () => {
    expect(variableNames.length).toBeGreaterThan(60)
    expect(variableNames.filter((name) => !defaultValues.has(name))).toEqual([])
    expect(defaultValues.get("KAFKA_BROKERS")).toBe("127.0.0.1:9092")
    expect(defaultValues.get("KAFKA_SSL")).toBe("false")
    expect(defaultValues.get("KAFKA_SSL_REJECT_UNAUTHORIZED")).toBe("true")
    expect(defaultValues.get("SENTINEL_PSEUDONYMISE_KEY")).toBeUndefined()
    for (
      const name of [
        "KAFKA_SSL_CA_FILE",
        "KAFKA_SASL_MECHANISM",
        "KAFKA_SASL_PASSWORD",
        "SENTINEL_PG_SSL",
        "SENTINEL_PG_SSL_CA_FILE",
        "CLICKHOUSE_CA_FILE",
        "CLICKHOUSE_CERT_FILE",
        "CLICKHOUSE_KEY_FILE",
        "SENTINEL_PSEUDONYMISE_KEY",
        "SENTINEL_LOG_LEVEL"
      ]
    ) expect(variableNames).toContain(name)
  })

  it("reads the stack's variables and Sentinel's own", () => {
    const settings = Either.getOrThrow(loadFrom({
      KAFKA_BROKERS: "a:1, b:2",
      DATABASE_URL: "postgresql://u:p@h:5/db",
      CLICKHOUSE_URL: "http://ch:8123",
      SENTINEL_GROUP_ID: "g",
      SENTINEL_AUTO_BLOCK_SEVERITIES: "high,critical",
      SENTINEL_PG_ROLE: ""
    }))
    expect(settings.kafka.brokers).toEqual(["a:1", "b:2"])
    expect(settings.kafka.analyticsGroupId).toBe("g-analytics")
    expect(Redacted.value(settings.postgres.url)).toBe("postgresql://u:p@h:5/db")
    expect(settings.postgres.autoBlockSeverities).toEqual(["HIGH", "CRITICAL"])
    expect(settings.postgres.role).toBeUndefined()
    expect(settings.clickhouse.target).toMatchObject({ _tag: "Server", url: "http://ch:8123" })
  })

  it("takes SENTINEL_MAX_IN_FLIGHT as given, and twice the batch size without it", () => {
    const given = Either.getOrThrow(loadFrom({ SENTINEL_MAX_IN_FLIGHT: "3000", SENTINEL_BATCH_MAX_RECORDS: "2000" }))
    expect(given.kafka.maxInFlight).toBe(3_000)
    const derived = Either.getOrThrow(loadFrom({ SENTINEL_BATCH_MAX_RECORDS: "2000" }))
    expect(derived.kafka.maxInFlight).toBe(4_000)
    expect(problems({ SENTINEL_MAX_IN_FLIGHT: "0" })).toEqual(["SENTINEL_MAX_IN_FLIGHT: expected a positive integer"])
  })

  it("names every bad variable and what it expects, one line each", () => {
    const result = loadFrom({
      KAFKA_BROKERS: "nope",
      SENTINEL_BATCH_MAX_RECORDS: "0",
      SENTINEL_BATCH_MAX_WAIT_MS: "soon",
      DATABASE_URL: "mysql://x",
      SENTINEL_AUTO_BLOCK_SEVERITIES: "SEVERE",
      SENTINEL_CH_ANALYTICS_TTL_DAYS: "99999"
    })
    expect(Either.isLeft(result)).toBe(true)
    const lines = describeConfigError(Either.getLeft(result).pipe((o) => o._tag === "Some" ? o.value : undefined)!)
      .split("\n")
      .sort()
    expect(lines).toEqual([
      "DATABASE_URL: expected a postgres:// URL",
      "KAFKA_BROKERS: expected host:port[,host:port…]",
      "SENTINEL_AUTO_BLOCK_SEVERITIES: expected a comma-separated list of MINIMAL|LOW|MEDIUM|HIGH|CRITICAL, got SEVERE",
      "SENTINEL_BATCH_MAX_RECORDS: expected a positive integer",
      "SENTINEL_BATCH_MAX_WAIT_MS: Expected an integer value but received \"soon\"",
      "SENTINEL_CH_ANALYTICS_TTL_DAYS: expected a whole number of days from 1 to 10000"
    ])
  })

  it("reads Kafka TLS and SASL", () => {
    const ca = file("kafka-ca.pem")
    const cert = file("kafka-cert.pem")
    const key = file("kafka-key.pem")
    const settings = Either.getOrThrow(loadFrom({
      KAFKA_SSL: "true",
      KAFKA_SSL_CA_FILE: ca,
      KAFKA_SSL_CERT_FILE: cert,
      KAFKA_SSL_KEY_FILE: key,
      KAFKA_SSL_REJECT_UNAUTHORIZED: "false",
      KAFKA_SASL_MECHANISM: "SCRAM-SHA-256",
      KAFKA_SASL_USERNAME: "sentinel",
      KAFKA_SASL_PASSWORD: "s3cret"
    }))
    expect(settings.kafka.tls).toEqual({ caFile: ca, certFile: cert, keyFile: key, rejectUnauthorized: false })
    expect(settings.kafka.sasl).toMatchObject({ mechanism: "scram-sha-256", username: "sentinel" })
    expect(Redacted.value(settings.kafka.sasl!.password)).toBe("s3cret")
    expect(String(settings.kafka.sasl!.password)).not.toContain("s3cret")
    // TLS on its own, verifying against the system's CAs.
    expect(Either.getOrThrow(loadFrom({ KAFKA_SSL: "true" })).kafka.tls).toEqual({
      caFile: undefined,
      certFile: undefined,
      keyFile: undefined,
      rejectUnauthorized: true
    })
  })

  it("reads PostgreSQL TLS from SENTINEL_PG_SSL or from the URL's sslmode", () => {
    const ca = file("pg-ca.pem")
    const explicit = Either.getOrThrow(loadFrom({ SENTINEL_PG_SSL: "verify-full", SENTINEL_PG_SSL_CA_FILE: ca }))
    expect(explicit.postgres.ssl).toEqual({ mode: "verify-full", caFile: ca })
    const fromUrl = Either.getOrThrow(loadFrom({ DATABASE_URL: "postgres://u@h:5/db?sslmode=require" }))
    expect(fromUrl.postgres.ssl).toEqual({ mode: "require", caFile: undefined })
    // The URL keeps its parameters; PgConnection.ts takes them out when it connects.
    expect(Redacted.value(fromUrl.postgres.url)).toBe("postgres://u@h:5/db?sslmode=require")
    const withRoot = Either.getOrThrow(
      loadFrom({ DATABASE_URL: `postgres://u@h:5/db?sslmode=verify-full&sslrootcert=${ca}` })
    )
    expect(withRoot.postgres.ssl).toEqual({ mode: "verify-full", caFile: ca })
    // The variable wins over the URL.
    const overridden = Either.getOrThrow(loadFrom({
      DATABASE_URL: "postgres://u@h:5/db?sslmode=require",
      SENTINEL_PG_SSL: "disable"
    }))
    expect(overridden.postgres.ssl.mode).toBe("disable")
  })

  it("reads ClickHouse TLS for an https:// server", () => {
    const ca = file("ch-ca.pem")
    const cert = file("ch-cert.pem")
    const key = file("ch-key.pem")
    const settings = Either.getOrThrow(loadFrom({
      CLICKHOUSE_URL: "https://ch.example:8443",
      CLICKHOUSE_CA_FILE: ca,
      CLICKHOUSE_CERT_FILE: cert,
      CLICKHOUSE_KEY_FILE: key
    }))
    expect(settings.clickhouse.target).toMatchObject({
      _tag: "Server",
      url: "https://ch.example:8443",
      tls: { caFile: ca, client: { certFile: cert, keyFile: key } }
    })
  })

  it("reads the pseudonymisation key and the log level", () => {
    const key = "k".repeat(32)
    const settings = Either.getOrThrow(loadFrom({ SENTINEL_PSEUDONYMISE_KEY: key, SENTINEL_LOG_LEVEL: "Debug" }))
    expect(Redacted.value(settings.clickhouse.pseudonymiseKey!)).toBe(key)
    expect(settings.logLevel).toBe(LogLevel.Debug)
  })

  it("names each bad security setting and what it expects", () => {
    expect(problems({
      KAFKA_SSL: "maybe",
      KAFKA_SSL_REJECT_UNAUTHORIZED: "perhaps",
      KAFKA_SSL_CA_FILE: missing,
      KAFKA_SASL_MECHANISM: "gssapi",
      SENTINEL_PG_SSL: "prefer",
      SENTINEL_PG_SSL_CA_FILE: folder,
      CLICKHOUSE_URL: "ftp://ch",
      CLICKHOUSE_CA_FILE: missing,
      SENTINEL_PSEUDONYMISE_KEY: "too short for a key",
      SENTINEL_LOG_LEVEL: "loud"
    })).toEqual([
      `CLICKHOUSE_CA_FILE: cannot read ${missing} (ENOENT: no such file or directory, access '${missing}')`,
      "CLICKHOUSE_URL: expected an http:// or https:// URL",
      `KAFKA_SASL_MECHANISM: expected plain | scram-sha-256 | scram-sha-512, got "gssapi"`,
      `KAFKA_SSL: Expected a boolean value but received "maybe"`,
      `KAFKA_SSL_CA_FILE: cannot read ${missing} (ENOENT: no such file or directory, access '${missing}')`,
      `KAFKA_SSL_REJECT_UNAUTHORIZED: Expected a boolean value but received "perhaps"`,
      `SENTINEL_LOG_LEVEL: expected all | trace | debug | info | warning | error | fatal | none, got "loud"`,
      `SENTINEL_PG_SSL: expected disable | require | verify-full, got "prefer"`,
      `SENTINEL_PG_SSL_CA_FILE: ${folder} is not a file`,
      "SENTINEL_PSEUDONYMISE_KEY: expected at least 32 bytes (e.g. `openssl rand -hex 32`)"
    ])
  })

  it("never shows a secret in a message", () => {
    const lines = problems({ SENTINEL_PSEUDONYMISE_KEY: "hunter2-hunter2", KAFKA_SASL_PASSWORD: "hunter3" }).join("\n")
    expect(lines).not.toContain("hunter")
    expect(lines).toBe(
      "KAFKA_SASL_MECHANISM: expected plain | scram-sha-256 | scram-sha-512 with a SASL user name and password\n" +
        "SENTINEL_PSEUDONYMISE_KEY: expected at least 32 bytes (e.g. `openssl rand -hex 32`)"
    )
  })

  it("rejects security settings that do not go together, naming the variable", () => {
    const ca = file("together-ca.pem")
    const cert = file("together-cert.pem")
    expect(problems({
      KAFKA_SSL_CA_FILE: ca,
      KAFKA_SASL_MECHANISM: "plain",
      KAFKA_SASL_USERNAME: "sentinel",
      SENTINEL_PG_SSL: "require",
      SENTINEL_PG_SSL_CA_FILE: ca,
      CLICKHOUSE_URL: "http://ch:8123",
      CLICKHOUSE_CA_FILE: ca
    })).toEqual([
      "CLICKHOUSE_CA_FILE: used only with an https:// CLICKHOUSE_URL",
      "KAFKA_SASL_PASSWORD: required with KAFKA_SASL_MECHANISM",
      "KAFKA_SSL_CA_FILE: set, but KAFKA_SSL is not true",
      "SENTINEL_PG_SSL_CA_FILE: used only with verify-full"
    ])
    expect(problems({
      KAFKA_SSL: "true",
      KAFKA_SSL_CERT_FILE: cert,
      KAFKA_SASL_PASSWORD: "p",
      DATABASE_URL: "postgres://u@h:5/db?sslmode=verify-ca",
      CLICKHOUSE_URL: "https://ch:8443",
      CLICKHOUSE_CERT_FILE: cert,
      CLICKHOUSE_KEY_FILE: cert
    })).toEqual([
      "CLICKHOUSE_CA_FILE: required with CLICKHOUSE_CERT_FILE",
      "DATABASE_URL: sslmode=verify-ca is not supported: use disable, require, verify-full (or set SENTINEL_PG_SSL)",
      "KAFKA_SASL_MECHANISM: expected plain | scram-sha-256 | scram-sha-512 with a SASL user name and password",
      "KAFKA_SSL_KEY_FILE: required with the other"
    ])
    expect(problems({ DATABASE_URL: `postgres://u@h:5/db?sslmode=verify-full&sslrootcert=${missing}` })).toEqual([
      `DATABASE_URL: cannot read sslrootcert ${missing}`
    ])
    expect(problems({ DATABASE_URL: "postgres://u@h:5/db?sslmode=verify-full&sslcert=/c.pem" })).toEqual([
      "DATABASE_URL: sslcert is not supported (client certificates)"
    ])
  })
})
