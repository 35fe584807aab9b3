import { PgClient } from "@effect/sql-pg"
import { Effect } from "effect"
import type { SentinelSettings } from "../config/Config.ts"
import * as ClickHouse from "../sinks/clickhouse/ClickHouse.ts"
import { migrateClickHouse } from "../sinks/clickhouse/Migrations.ts"
import { migratePostgres } from "../sinks/postgres/Migrations.ts"
import { pgConnection } from "../sinks/postgres/PgConnection.ts"
import type { Command } from "./Command.ts"

/** `sentinel migrate`: both stores, each safe to run again and (Postgres) from two processes at once. */
export const migrate = (settings: SentinelSettings) =>
  Effect.gen(function*() {
    const postgres = yield* migratePostgres.pipe(
      Effect.provide(PgClient.layer({ ...pgConnection(settings.postgres), maxConnections: 1 }))
    )
    yield* Effect.logInfo("postgres migrated").pipe(
      Effect.annotateLogs({ applied: postgres.map((m) => m.name).join(",") || "none" })
    )
    const clickhouse = yield* Effect.scoped(
      Effect.flatMap(ClickHouse.make(settings.clickhouse.target), (client) =>
        migrateClickHouse(client, {
          analyticsTtlDays: settings.clickhouse.analyticsTtlDays,
          metricsTtlDays: settings.clickhouse.metricsTtlDays
        }))
    )
    yield* Effect.logInfo("clickhouse migrated").pipe(
      Effect.annotateLogs({ applied: clickhouse.applied.join(",") || "none" })
    )
  })

export const migrateCommand: Command = {
  summary: "apply the PostgreSQL and ClickHouse migrations (safe to repeat)",
  usage: "sentinel migrate",
  options: {},
  run: (settings) => Effect.as(migrate(settings), 0)
}
