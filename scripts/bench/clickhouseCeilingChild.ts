/**
 * Ceiling of the analytics store, in a process of its own (chDB is in-process and one process owns a
 * folder): the produced records' analytics rows written straight into a fresh chDB folder, one batch
 * of the pipeline's size after the other, either
 * - `writer`: by the AnalyticsWriter (identity look-up, then inserts with deduplication tokens), or
 * - `raw`: the very rows the AnalyticsWriter would insert, as plain `@clickhouse/client` JSONEachRow
 *   inserts, without the look-up or tokens.
 *
 * Input: one JSON argument (ClickHouseCeilingInput). Output: one line `RESULT <json>` on stdout.
 */
import type { ClickHouseClient, InsertParams } from "@clickhouse/client"
import { Effect } from "effect"
import { route, topicKinds } from "../../src/routing/Router.ts"
import * as AnalyticsWriter from "../../src/sinks/clickhouse/AnalyticsWriter.ts"
import { ClickHouse, makeClient } from "../../src/sinks/clickhouse/ClickHouse.ts"
import { migrateClickHouse } from "../../src/sinks/clickhouse/Migrations.ts"
import type { ClickHouseCeilingInput, ClickHouseCeilingOutput } from "./clickhouseCeiling.ts"
import { recordBatches, recordsPerChunk, timeWrites } from "./records.ts"

const input = JSON.parse(process.argv[2]!) as ClickHouseCeilingInput
const tables = ["transaction_records", "detection_results", "fraud_features", "performance_metrics"] as const

interface Insert {
  readonly table: string
  readonly rows: ReadonlyArray<Record<string, unknown>>
}

/**
 * A stand-in client that stores nothing: identity look-ups find nothing stored, and inserts are kept
 * so the rows the AnalyticsWriter would send can be replayed as raw inserts.
 */
const recordingClient = (inserts: Array<Insert>): ClickHouseClient =>
  ({
    query: async () => ({ json: async () => [] }),
    command: async () => ({}),
    insert: async (params: InsertParams<unknown, ReadonlyArray<unknown>>) => {
      const columns = params.columns as ReadonlyArray<string>
      const values = params.values as ReadonlyArray<ReadonlyArray<unknown>>
      inserts.push({
        table: params.table,
        rows: values.map((row) => Object.fromEntries(columns.map((column, i) => [column, row[i]])))
      })
      return {}
    }
  }) as unknown as ClickHouseClient

const main = async (): Promise<ClickHouseCeilingOutput> => {
  const client = makeClient({ _tag: "Embedded", path: input.path })
  try {
    await Effect.runPromise(
      migrateClickHouse(client, { analyticsTtlDays: input.analyticsTtlDays, metricsTtlDays: input.metricsTtlDays })
    )
    const kinds = topicKinds(input.data.topics)
    const analyticsBatches = function*() {
      for (const records of recordBatches(input.data, input.batchSize)) {
        const routed = route(kinds, records)
        yield { detections: routed.detections, transactions: routed.transactions, metrics: routed.metrics }
      }
    }
    const batchesPerChunk = Math.ceil(recordsPerChunk / input.batchSize)
    let wireRows = 0
    let timed: { readonly seconds: number; readonly cpuSeconds: number }
    if (input.mode === "writer") {
      const writer = await Effect.runPromise(
        AnalyticsWriter.make().pipe(Effect.provideService(ClickHouse, client))
      )
      timed = await timeWrites(analyticsBatches(), batchesPerChunk, async (batch) => {
        const written = await Effect.runPromise(writer.write(batch))
        wireRows += written.transactionRows + written.detectionRows + written.metricRows
      })
    } else {
      // Through chdb/connection a setting is SET on the shared session: the migrations' deduplication
      // token would stick to every raw insert below, and all but the first would be dropped.
      await client.command({ query: "SET insert_deduplication_token = ''" })
      const captured: Array<Insert> = []
      const recorder = await Effect.runPromise(
        AnalyticsWriter.make().pipe(Effect.provideService(ClickHouse, recordingClient(captured)))
      )
      const rawBatches = async function*() {
        for (const batch of analyticsBatches()) {
          captured.length = 0
          await Effect.runPromise(recorder.write(batch))
          yield [...captured]
        }
      }
      timed = await timeWrites(rawBatches(), batchesPerChunk, async (inserts) => {
        for (const { rows, table } of inserts) {
          await client.insert({ table, values: rows, format: "JSONEachRow" })
          wireRows += rows.length
        }
      })
    }
    const storedRows: Record<string, number> = {}
    for (const table of tables) {
      // Table names from the constant list above, never from input.
      const result = await client.query({ query: `SELECT count() AS n FROM ${table}`, format: "JSONEachRow" })
      const [row] = await result.json<{ n: string }>()
      storedRows[table] = Number(row?.n ?? 0)
    }
    return {
      mode: input.mode,
      records: input.data.count,
      batchSize: input.batchSize,
      ...timed,
      wireRows,
      storedRows,
      peakRssMb: process.resourceUsage().maxRSS / 1024
    }
  } finally {
    await client.close()
  }
}

main().then(
  (output) => {
    process.stdout.write(`RESULT ${JSON.stringify(output)}\n`)
    process.exit(0)
  },
  (error: unknown) => {
    process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`)
    process.exit(1)
  }
)
