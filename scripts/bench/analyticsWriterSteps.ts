/**
 * Where the AnalyticsWriter's time goes, on chDB: the benchmark's records written by the writer into a
 * fresh chDB folder, batch after batch, with every client call timed by kind (identity look-up,
 * INSERT per table, view completion). The records are generated and decoded before the clock starts.
 *
 *   node --import tsx scripts/bench/analyticsWriterSteps.ts [--records N] [--batch B] [--concurrency C]
 *     [--replay]
 *
 * `--replay` writes everything a second time (all rows already stored: the look-up path alone).
 * Prints one JSON line. The chDB folder is made under the OS temp folder and removed afterwards.
 */
import type { ClickHouseClient } from "@clickhouse/client"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { parseArgs } from "node:util"
import { route, topicKinds } from "../../src/routing/Router.ts"
import * as AnalyticsWriter from "../../src/sinks/clickhouse/AnalyticsWriter.ts"
import { ClickHouse, makeClient } from "../../src/sinks/clickhouse/ClickHouse.ts"
import { migrateClickHouse } from "../../src/sinks/clickhouse/Migrations.ts"
import { type Dataset, recordBatches } from "./records.ts"

const { values } = parseArgs({
  options: {
    records: { type: "string" },
    batch: { type: "string" },
    concurrency: { type: "string" },
    replay: { type: "boolean" }
  }
})
const records = Number(values.records ?? 40_000)
const batchSize = Number(values.batch ?? 5_000)
// 1 makes the per-call times add up to the whole; the writer's default overlaps the three tables.
const concurrency = values.concurrency === undefined ? undefined : Number(values.concurrency)

const data: Dataset = {
  count: records,
  seed: 1,
  alertShare: 0.1,
  start: new Date().toISOString(),
  topics: { detections: "d", metrics: "m", transactions: "t", audits: "a" },
  partitions: 6
}

/** Milliseconds and calls per kind of client call. */
const steps = new Map<string, { ms: number; calls: number }>()
const timed = (kind: string, started: number) => {
  const step = steps.get(kind) ?? { ms: 0, calls: 0 }
  step.ms += performance.now() - started
  step.calls++
  steps.set(kind, step)
}

/**
 * Names a call by what it does: `insert <table>`, `query SELECT <tables read>`, `command INSERT <table>`.
 */
const kindOf = (method: string, params: { table?: string; query?: string }): string => {
  if (params.table !== undefined) return `${method} ${params.table}`
  const query = (params.query ?? "").replace(/\s+/g, " ").trim()
  const into = /\bINTO (\w+)/.exec(query)?.[1]
  const read = [...new Set(Array.from(query.matchAll(/\bFROM (\w+)/g), (match) => match[1]))].join("+")
  return `${method} ${query.split(" ")[0]} ${into ?? (read === "" ? "?" : read)}`
}

const timing = (client: ClickHouseClient): ClickHouseClient =>
  new Proxy(client, {
    get: (target, key) => {
      const value: unknown = Reflect.get(target, key)
      if (typeof value !== "function") return value
      if (key !== "query" && key !== "insert" && key !== "command" && key !== "exec") return value.bind(target)
      return async (params: { table?: string; query?: string }) => {
        const started = performance.now()
        const result: unknown = await (value as (p: unknown) => Promise<unknown>).call(target, params)
        // A query's rows are read by the caller; reading them here keeps the parse inside the timing.
        if (key === "query") {
          const rows = await (result as { json: () => Promise<unknown> }).json()
          timed(kindOf(key, params), started)
          return { json: async () => rows }
        }
        timed(kindOf(key, params), started)
        return result
      }
    }
  })

const main = async () => {
  const folder = fs.mkdtempSync(path.join(os.tmpdir(), "sentinel-analytics-steps-"))
  const client = makeClient({ _tag: "Embedded", path: folder })
  try {
    await Effect.runPromise(migrateClickHouse(client, { analyticsTtlDays: 3650, metricsTtlDays: 3650 }))
    const kinds = topicKinds(data.topics)
    const preparing = performance.now()
    const batches = [...recordBatches(data, batchSize)].map((batch) => {
      const routed = route(kinds, batch)
      return { detections: routed.detections, transactions: routed.transactions, metrics: routed.metrics }
    })
    // On stderr, so that a profiler can be told to skip the preparation (perf record -D).
    process.stderr.write(`prepared in ${Math.round(performance.now() - preparing)} ms\n`)
    const writer = await Effect.runPromise(
      AnalyticsWriter.make(concurrency === undefined ? {} : { concurrency }).pipe(
        Effect.provideService(ClickHouse, timing(client))
      )
    )
    const pass = async () => {
      steps.clear()
      const started = performance.now()
      const cpuBefore = process.cpuUsage()
      for (const batch of batches) await Effect.runPromise(writer.write(batch))
      const seconds = (performance.now() - started) / 1000
      const cpu = process.cpuUsage(cpuBefore)
      const inCalls = [...steps.values()].reduce((sum, step) => sum + step.ms, 0)
      return {
        seconds: Number(seconds.toFixed(3)),
        recordsPerSecond: Math.round(records / seconds),
        // This process's CPU (JavaScript and the chDB engine's threads): on a shared machine the
        // steadier measure of the work done.
        cpuMsPerThousandRecords: Number(((cpu.user + cpu.system) / records).toFixed(1)),
        // Time outside every client call: row building, encoding, hashing, Effect (with --concurrency 1;
        // overlapping calls count twice, and this goes negative).
        ownMs: Math.round(seconds * 1000 - inCalls),
        steps: Object.fromEntries(
          [...steps.entries()].map(([kind, step]) => [kind, { ms: Math.round(step.ms), calls: step.calls }])
        )
      }
    }
    const first = await pass()
    const replay = values.replay === true ? await pass() : undefined
    const counts: Record<string, number> = {}
    for (const table of ["transaction_records", "detection_results", "fraud_features", "performance_metrics"]) {
      const result = await client.query({ query: `SELECT count() AS n FROM ${table}`, format: "JSONEachRow" })
      counts[table] = Number((await result.json<{ n: string }>())[0]?.n)
    }
    process.stdout.write(`${JSON.stringify({ records, batchSize, concurrency, first, replay, counts })}\n`)
  } finally {
    await client.close()
    fs.rmSync(folder, { recursive: true, force: true })
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`)
  process.exit(1)
})
