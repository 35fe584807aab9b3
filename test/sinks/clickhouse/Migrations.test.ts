import type { ClickHouseClient } from "@clickhouse/client"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect, Either, Logger, LogLevel } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { makeClient } from "../../../src/sinks/clickhouse/ClickHouse.ts"
import { migrateClickHouse, render, splitStatements } from "../../../src/sinks/clickhouse/Migrations.ts"
import { freshClickHousePath } from "../../support/services.ts"

// chDB allows one data folder per process: this file's tests share one client, in order.
let client: ClickHouseClient

beforeAll(() => {
  client = makeClient({ _tag: "Embedded", path: freshClickHousePath() })
})

afterAll(() => client.close())

const rows = async <T>(query: string): Promise<Array<T>> =>
  (await client.query({ query, format: "JSONEachRow" })).json<T>()

const tableNames = async (): Promise<Array<string>> =>
  (await rows<{ name: string }>("SELECT name FROM system.tables WHERE database = currentDatabase() ORDER BY name"))
    .map((row) => row.name)

const migrationFolder = (files: Record<string, string>): string => {
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), "sentinel-ch-migrations-"))
  for (const [name, sql] of Object.entries(files)) fs.writeFileSync(path.join(directory, name), sql)
  return directory
}

const schema = {
  alerts: "MergeTree",
  detection_results: "MergeTree",
  fraud_features: "MergeTree",
  fraud_features_mv: "MaterializedView",
  fraud_rate_hourly: "SummingMergeTree",
  fraud_rate_hourly_alerts_mv: "MaterializedView",
  fraud_rate_hourly_transactions_mv: "MaterializedView",
  ground_truth_labels: "ReplacingMergeTree",
  model_accuracy_hourly: "View",
  model_predictions_hourly: "SummingMergeTree",
  model_predictions_hourly_mv: "MaterializedView",
  performance_metrics: "MergeTree",
  schema_migrations: "MergeTree",
  transaction_records: "MergeTree",
  user_activity_daily: "AggregatingMergeTree",
  user_activity_daily_alerts_mv: "MaterializedView",
  user_activity_daily_transactions_mv: "MaterializedView"
}

const migrationFiles = ["0001_analytics_tables.sql", "0002_alerts.sql", "0003_rollups.sql", "0004_model_accuracy.sql"]

describe("ClickHouse migrations", () => {
  it("rejects a TTL that is not a positive integer before touching the database", async () => {
    for (
      const options of [
        { analyticsTtlDays: 1.5 },
        { analyticsTtlDays: 0 },
        { analyticsTtlDays: -30 },
        { analyticsTtlDays: Number.NaN },
        { analyticsTtlDays: 36_500 }, // past 2106, where DateTime ends: every row would expire at once
        { metricsTtlDays: Number.POSITIVE_INFINITY },
        { metricsTtlDays: "90; DROP TABLE alerts" as unknown as number }
      ]
    ) {
      const error = await Effect.runPromise(Effect.flip(migrateClickHouse(client, options)))
      expect(error._tag).toBe("ClickHouseMigrationError")
      expect(error.classification).toBe("permanent")
      expect(error.message).toMatch(/(analytics|metrics)TtlDays must be an integer from 1 to 10000, got /)
    }
    expect(await tableNames()).toEqual([])
  })

  it("applies every file once, substituting the TTLs; a second run is a no-op", async () => {
    const first = await Effect.runPromise(migrateClickHouse(client, { analyticsTtlDays: 30, metricsTtlDays: 7 }))
    expect(first).toEqual({ applied: migrationFiles, alreadyApplied: [] })

    const second = await Effect.runPromise(migrateClickHouse(client, { analyticsTtlDays: 30, metricsTtlDays: 7 }))
    expect(second).toEqual({ applied: [], alreadyApplied: migrationFiles })

    const tables = await rows<{ name: keyof typeof schema; engine: string; create_table_query: string }>(
      "SELECT name, engine, create_table_query FROM system.tables WHERE database = currentDatabase() ORDER BY name"
    )
    expect(Object.fromEntries(tables.map((table) => [table.name, table.engine]))).toEqual(schema)
    expect(await rows("SELECT version, name FROM schema_migrations ORDER BY version")).toEqual(
      migrationFiles.map((name, index) => ({ version: index + 1, name }))
    )

    const ddl = Object.fromEntries(tables.map((table) => [table.name, table.create_table_query]))
    for (const query of Object.values(ddl)) expect(query).not.toContain("{{")
    for (const table of ["transaction_records", "detection_results", "fraud_features", "alerts", "fraud_rate_hourly"]) {
      expect(ddl[table as keyof typeof schema]).toMatch(/TTL .*toIntervalDay\(30\)/)
    }
    expect(ddl.performance_metrics).toMatch(/TTL toDateTime\(metric_time\) \+ toIntervalDay\(7\)/)
    expect(ddl.detection_results).toContain("non_replicated_deduplication_window = 100000")
  })

  it("reports a TTL changed after its migration was applied, and leaves the tables as they are", async () => {
    const warnings: Array<string> = []
    const logger = Logger.make(({ logLevel, message }) => {
      if (logLevel === LogLevel.Warning) warnings.push(String(message))
    })
    const report = await Effect.runPromise(
      migrateClickHouse(client, { analyticsTtlDays: 60, metricsTtlDays: 7 }).pipe(
        Effect.provide(Logger.replace(Logger.defaultLogger, logger))
      )
    )
    expect(report.applied).toEqual([])
    expect(warnings).toHaveLength(migrationFiles.length) // every file uses analyticsTtlDays
    expect(warnings.join("\n")).toContain(
      "0003_rollups.sql was applied with {\"analyticsTtlDays\":\"30\"}, now {\"analyticsTtlDays\":\"60\"}"
    )
    const [alerts] = await rows<{ create_table_query: string }>(
      "SELECT create_table_query FROM system.tables WHERE database = currentDatabase() AND name = 'alerts'"
    )
    expect(alerts!.create_table_query).toContain("toIntervalDay(30)")
  })

  it("refuses a placeholder it has no value for, and records nothing", async () => {
    const directory = migrationFolder({
      "9001_probe.sql": "CREATE TABLE IF NOT EXISTS probe (x UInt8) ENGINE = MergeTree ORDER BY x TTL {{retention}}"
    })
    const error = await Effect.runPromise(Effect.flip(migrateClickHouse(client, { directory })))
    expect(error).toMatchObject({ migration: "9001_probe.sql", message: "unknown placeholder {{retention}}" })
    expect(await tableNames()).not.toContain("probe")
    expect(await rows("SELECT version FROM schema_migrations WHERE version = 9001")).toEqual([])
  })

  it("refuses to go on when an applied file was edited afterwards", async () => {
    const directory = migrationFolder({
      "9002_probe.sql": "CREATE TABLE IF NOT EXISTS probe (x UInt8) ENGINE = MergeTree ORDER BY x"
    })
    expect((await Effect.runPromise(migrateClickHouse(client, { directory }))).applied).toEqual(["9002_probe.sql"])
    fs.appendFileSync(path.join(directory, "9002_probe.sql"), ";\nALTER TABLE probe ADD COLUMN y UInt8")
    const error = await Effect.runPromise(Effect.flip(migrateClickHouse(client, { directory })))
    expect(error.message).toMatch(/9002_probe\.sql changed after it was applied/)
  })
})

describe("statements and placeholders", () => {
  it("splits only at the semicolons that end statements", () => {
    const sql = `-- a comment; with a semicolon
CREATE TABLE a (s String DEFAULT 'x;y', t String DEFAULT 'it''s; fine', "odd;name" UInt8) ENGINE = Memory;
/* block; comment */
CREATE VIEW b AS SELECT 'a\\';b' AS c, \`q;r\` FROM a ;
-- trailing comment only; nothing to run
`
    expect(splitStatements(sql)).toEqual([
      `CREATE TABLE a (s String DEFAULT 'x;y', t String DEFAULT 'it''s; fine', "odd;name" UInt8) ENGINE = Memory`,
      `CREATE VIEW b AS SELECT 'a\\';b' AS c, \`q;r\` FROM a`
    ])
    expect(splitStatements("SELECT 1 -- one\n, 2 /* two */ + 3")).toEqual(["SELECT 1 \n, 2   + 3"])
  })

  it("substitutes only the known placeholders", () => {
    const values = new Map([["analyticsTtlDays", "365"]])
    expect(render("TTL d + INTERVAL {{analyticsTtlDays}} DAY, {{ analyticsTtlDays }}", values)).toEqual(
      Either.right("TTL d + INTERVAL 365 DAY, 365")
    )
    expect(render("{{analyticsTtlDays}} {{other}}", values)).toEqual(Either.left("unknown placeholder {{other}}"))
  })
})
