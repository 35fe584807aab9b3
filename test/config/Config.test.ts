import { ConfigProvider, Duration, Effect, Either, Redacted } from "effect"
import { describe, expect, it } from "vitest"
import { describeConfigError, load } from "../../src/config/Config.ts"

const loadFrom = (env: Record<string, string>) =>
  Effect.runSync(Effect.either(Effect.withConfigProvider(load, ConfigProvider.fromMap(new Map(Object.entries(env))))))

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
})
