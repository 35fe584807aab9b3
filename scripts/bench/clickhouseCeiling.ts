/**
 * Runs the analytics store's ceiling (clickhouseCeilingChild.ts) in a child process with a chDB folder
 * of its own, and checks that every expected row landed before its speed counts.
 */
import { spawn } from "node:child_process"
import * as path from "node:path"
import type { PlanTally } from "../../src/produce/DetectorOutput.ts"
import { projectRoot } from "../stack/layout.ts"
import type { Cleanup } from "./cleanup.ts"
import { childEnv } from "./deployment.ts"
import type { Dataset } from "./records.ts"

export interface ClickHouseCeilingInput {
  readonly mode: "writer" | "raw"
  readonly path: string
  readonly data: Dataset
  readonly batchSize: number
  readonly analyticsTtlDays: number
  readonly metricsTtlDays: number
}

export interface ClickHouseCeilingOutput {
  readonly mode: "writer" | "raw"
  readonly records: number
  readonly batchSize: number
  /** Seconds spent in the writes alone. */
  readonly seconds: number
  /** The child's CPU seconds during those writes, the engine's threads included. */
  readonly cpuSeconds: number
  /** Rows sent: transaction records, detection results, performance metrics. */
  readonly wireRows: number
  /** Rows stored per table afterwards, fraud_features (filled by a materialized view) included. */
  readonly storedRows: Readonly<Record<string, number>>
  readonly peakRssMb: number
}

export interface ClickHouseCeiling extends ClickHouseCeilingOutput {
  readonly batches: number
  /** 100 = one core busy. */
  readonly cpuPercent: number
  readonly recordsPerSecond: number
  readonly wireRowsPerSecond: number
  /** Every stored row, the view-made fraud_features too, per second. */
  readonly storedRowsPerSecond: number
}

const child = path.join(projectRoot, "scripts", "bench", "clickhouseCeilingChild.ts")

const expectedRows = (tally: PlanTally) => {
  const detections = Object.values(tally.detections).reduce((sum, n) => sum + n, 0)
  return {
    transaction_records: detections + tally.transactions,
    detection_results: detections,
    performance_metrics: tally.metrics
  }
}

export const clickhouseCeiling = async (
  cleanup: Cleanup,
  input: ClickHouseCeilingInput,
  tally: PlanTally
): Promise<ClickHouseCeiling> => {
  const worker = spawn(process.execPath, ["--import", "tsx", child, JSON.stringify(input)], {
    cwd: projectRoot,
    env: childEnv({}),
    stdio: ["ignore", "pipe", "pipe"]
  })
  const stop = cleanup.add(`stop the ClickHouse ceiling (pid ${worker.pid})`, () => worker.kill("SIGKILL"))
  let stdout = ""
  let stderr = ""
  worker.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()))
  worker.stderr.on("data", (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-8000)))
  const code = await new Promise<number | null>((resolve) => worker.once("close", resolve))
  await stop()
  const line = stdout.split("\n").find((l) => l.startsWith("RESULT "))
  if (code !== 0 || line === undefined) {
    throw new Error(`ClickHouse ceiling (${input.mode}) exited ${code}:\n${stderr.trim()}`)
  }
  const output = JSON.parse(line.slice("RESULT ".length)) as ClickHouseCeilingOutput
  for (const [table, expected] of Object.entries(expectedRows(tally))) {
    if (output.storedRows[table] !== expected) {
      throw new Error(
        `ClickHouse ceiling (${input.mode}): ${table} holds ${output.storedRows[table]} rows, ${expected} expected`
      )
    }
  }
  const stored = Object.values(output.storedRows).reduce((sum, n) => sum + n, 0)
  return {
    ...output,
    batches: Math.ceil(output.records / output.batchSize),
    cpuPercent: (100 * output.cpuSeconds) / output.seconds,
    recordsPerSecond: output.records / output.seconds,
    wireRowsPerSecond: output.wireRows / output.seconds,
    storedRowsPerSecond: stored / output.seconds
  }
}
