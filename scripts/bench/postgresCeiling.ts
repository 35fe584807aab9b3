/**
 * Ceiling of the alert store: the produced records' alerts, accounts, audit and outbox rows written
 * straight to a fresh PostgreSQL database by the AlertWriter (set-based, one transaction per batch of
 * the pipeline's size), one batch after the other as the alert path writes them, with no Kafka,
 * batching or routing around it.
 */
import { PgClient } from "@effect/sql-pg"
import { Effect, Layer, ManagedRuntime, Redacted } from "effect"
import type { SentinelSettings } from "../../src/config/Config.ts"
import { route, topicKinds } from "../../src/routing/Router.ts"
import * as AlertWriter from "../../src/sinks/postgres/AlertWriter.ts"
import { migratePostgres } from "../../src/sinks/postgres/Migrations.ts"
import { connectAs } from "../../src/sinks/postgres/WriterRole.ts"
import { type Dataset, recordBatches, recordsPerChunk, timeWrites } from "./records.ts"

export interface PostgresCeiling {
  readonly records: number
  readonly alerts: number
  /** Batches written, each its own transaction. */
  readonly batches: number
  /** Seconds spent in the writes alone. */
  readonly seconds: number
  readonly alertsPerSecond: number
  /** The records whose alerts these were, per second: comparable with the alert path's records/s. */
  readonly recordsPerSecond: number
}

export const postgresCeiling = async (
  data: Dataset,
  settings: SentinelSettings,
  databaseUrl: string,
  expectedAlerts: number
): Promise<PostgresCeiling> => {
  const ownerUrl = Redacted.make(databaseUrl)
  await Effect.runPromise(migratePostgres.pipe(Effect.provide(PgClient.layer({ url: ownerUrl, maxConnections: 1 }))))
  // The daemon's connection: its role and pool size.
  const runtime = ManagedRuntime.make(
    AlertWriter.layer({ autoBlockSeverities: settings.postgres.autoBlockSeverities }).pipe(
      Layer.provide(PgClient.layer({
        url: settings.postgres.role === undefined ? ownerUrl : connectAs(ownerUrl, settings.postgres.role),
        maxConnections: settings.postgres.maxConnections,
        applicationName: "sentinel-bench"
      }))
    )
  )
  try {
    const writer = await runtime.runPromise(AlertWriter.AlertWriter)
    const kinds = topicKinds(data.topics)
    const batchSize = settings.batch.maxRecords
    function* batches() {
      for (const records of recordBatches(data, batchSize)) {
        const routed = route(kinds, records)
        yield { alerts: routed.alerts, audits: routed.audits, deadLetters: routed.deadLetters }
      }
    }
    let alerts = 0
    let batchCount = 0
    const { seconds } = await timeWrites(batches(), Math.ceil(recordsPerChunk / batchSize), async (batch) => {
      const written = await runtime.runPromise(writer.write(batch))
      alerts += written.alertsCreated
      batchCount++
    })
    if (alerts !== expectedAlerts) {
      throw new Error(`PostgreSQL ceiling: ${alerts} alerts created, ${expectedAlerts} expected`)
    }
    return {
      records: data.count,
      alerts,
      batches: batchCount,
      seconds,
      alertsPerSecond: alerts / seconds,
      recordsPerSecond: data.count / seconds
    }
  } finally {
    await runtime.dispose()
  }
}
