/**
 * The benchmark's results: the machine they were measured on, the ratios and targets (issue #7)
 * worked out from the measurements, a table for people and a JSON file for tools.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import type { ClickHouseCeiling } from "./clickhouseCeiling.ts"
import type { KafkaCeiling } from "./kafkaCeiling.ts"
import type { PostgresCeiling } from "./postgresCeiling.ts"
import type { FixedRateRun, FullSpeedRun, Latency, LatencyQuantiles, RelayBacklogRun } from "./sentinelRun.ts"

export interface Machine {
  readonly cores: number
  readonly model: string
  readonly memoryGb: number
  readonly node: string
  readonly kernel: string
  /** 1, 5 and 15 minutes, when the run began: a busy machine reads low. */
  readonly loadAverage: ReadonlyArray<number>
}

export const machine = (): Machine => {
  const cpuinfo = fs.readFileSync("/proc/cpuinfo", "utf8")
  const meminfo = fs.readFileSync("/proc/meminfo", "utf8")
  return {
    cores: os.availableParallelism(),
    model: /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? os.cpus()[0]?.model ?? "unknown",
    memoryGb: Number(/^MemTotal:\s+(\d+)/m.exec(meminfo)?.[1] ?? NaN) / 1024 / 1024,
    node: process.version,
    kernel: os.release(),
    loadAverage: os.loadavg()
  }
}

export interface Measurements {
  readonly producer: { readonly records: number; readonly seconds: number; readonly recordsPerSecond: number }
  readonly kafka: KafkaCeiling
  readonly postgres: PostgresCeiling
  readonly clickhouseWriter: ClickHouseCeiling
  readonly clickhouseRaw: ClickHouseCeiling
  readonly clickhouseSmallBatches: ClickHouseCeiling
  readonly fullSpeed: FullSpeedRun
  readonly fixedRate: FixedRateRun
  readonly relayBacklog: RelayBacklogRun
}

export interface Target {
  readonly target: string
  /** As the table shows it. */
  readonly short: string
  readonly measured: number | null
  readonly unit: string
  readonly met: boolean | null
}

const worstP99 = (latency: Latency): number | null =>
  "byPath" in latency ? Math.max(...Object.values(latency.byPath).map((q) => q.p99)) : null

type BatchRun = Pick<ClickHouseCeiling, "records" | "batches" | "cpuSeconds">

/**
 * CPU per analytics batch in chDB as a fixed part plus a part per record, fitted through the two
 * AnalyticsWriter ceilings (full-size and small batches).
 */
export const clickhouseBatchCost = (largeBatches: BatchRun, smallBatches: BatchRun) => {
  const perBatch = (c: BatchRun) => ({ size: c.records / c.batches, cpuMs: (1000 * c.cpuSeconds) / c.batches })
  const large = perBatch(largeBatches)
  const small = perBatch(smallBatches)
  const perRecordMs = (large.cpuMs - small.cpuMs) / (large.size - small.size)
  return { fixedMsPerBatch: small.cpuMs - perRecordMs * small.size, microsPerRecord: perRecordMs * 1000 }
}

export const ratiosOf = (m: Measurements) => ({
  endToEndPerKafkaConsume: m.fullSpeed.recordsPerSecond / m.kafka.recordsPerSecond,
  alertPathPerPostgresDirect: m.fullSpeed.alertPathRecordsPerSecond / m.postgres.recordsPerSecond,
  analyticsPathPerClickHouseWriter: m.fullSpeed.analyticsPathRecordsPerSecond / m.clickhouseWriter.recordsPerSecond,
  analyticsPathPerClickHouseRaw: m.fullSpeed.analyticsPathRecordsPerSecond / m.clickhouseRaw.recordsPerSecond
})

/** Issue #7's targets against this run's figures. */
export const targetsOf = (m: Measurements): ReadonlyArray<Target> => {
  const ratios = ratiosOf(m)
  const p99 = worstP99(m.fixedRate.latency)
  const memoryGrowth = Math.max(m.fullSpeed.peakRssMb, m.fixedRate.peakRssMb, m.relayBacklog.peakRssMb) -
    m.fixedRate.idleRssMb
  return [
    {
      target: "end to end ≥ 35,000 records/s",
      short: "≥ 35,000 records/s",
      measured: m.fullSpeed.recordsPerSecond,
      unit: "records/s",
      met: m.fullSpeed.recordsPerSecond >= 35_000
    },
    {
      target: "end to end ≥ 0.5 × kafkajs consume-only",
      short: "≥ 0.5 × kafkajs",
      measured: ratios.endToEndPerKafkaConsume,
      unit: "×",
      met: ratios.endToEndPerKafkaConsume >= 0.5
    },
    {
      target: `p99 Kafka timestamp → durable ≤ 500 ms at ${m.fixedRate.rate.toLocaleString("en-US")} records/s`,
      short: "p99 ≤ 500 ms",
      measured: p99 === null ? null : p99 * 1000,
      unit: "ms (slower path)",
      met: p99 === null ? null : p99 <= 0.5
    },
    {
      target: "outbox relay ≥ 20,000 alerts/s",
      short: "≥ 20,000 alerts/s",
      measured: m.relayBacklog.alertsPerSecond,
      unit: "alerts/s (on a backlog)",
      met: m.relayBacklog.alertsPerSecond >= 20_000
    },
    {
      target: "peak RSS ≤ idle RSS + 200 MB",
      short: "≤ idle + 200 MB",
      measured: memoryGrowth,
      unit: "MB above idle",
      met: memoryGrowth <= 200
    }
  ]
}

const n = (value: number, digits = 0) =>
  Number.isFinite(value)
    ? value.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits })
    : "n/a"
const mb = (value: number) => `${n(value)} MB`
const ms = (q: LatencyQuantiles) => `${n(q.p50 * 1000)}/${n(q.p95 * 1000)}/${n(q.p99 * 1000)} ms`
const pathLatency = (latency: Latency, path: string) =>
  "byPath" in latency ? (latency.byPath[path] === undefined ? "n/a" : ms(latency.byPath[path])) : "n/a"

/** "mean batch N" when the daemon's /metrics said, else empty. */
const meanBatch = (latency: Latency, path: string) => {
  const mean = "byPath" in latency ? latency.byPath[path]?.meanBatch : undefined
  return mean === undefined || Number.isNaN(mean) ? "" : `mean batch ${n(mean)}`
}
/** A path's records/s, with its mean batch when known. */
const pathRate = (recordsPerSecond: number, latency: Latency, path: string) =>
  [`${n(recordsPerSecond)} records/s`, meanBatch(latency, path)].filter((part) => part !== "").join(", ")
const status = (met: boolean | null) => (met === null ? "n/a" : met ? "met" : "NOT MET")

interface Row {
  readonly measurement: string
  readonly figure: string
  readonly latency?: string
  readonly peakRss?: string
  readonly idleRss?: string
  readonly cpu?: string
  readonly ratio?: string
  readonly target?: string
  readonly status?: string
}

const columns: ReadonlyArray<readonly [keyof Row, string]> = [
  ["measurement", "measurement"],
  ["figure", "throughput"],
  ["latency", "p50/p95/p99"],
  ["peakRss", "peak RSS"],
  ["idleRss", "idle RSS"],
  ["cpu", "CPU%"],
  ["ratio", "ratio"],
  ["target", "target (issue #7)"],
  ["status", ""]
]

const rowsOf = (m: Measurements, targets: ReadonlyArray<Target>): ReadonlyArray<Row> => {
  const ratios = ratiosOf(m)
  const [rate, ratioTarget, p99Target, relayTarget, memoryTarget] = targets
  const { fixedRate, fullSpeed } = m
  const chRow = (name: string, ceiling: ClickHouseCeiling): Row => ({
    measurement: `${name}, batches of ${n(ceiling.batchSize)}`,
    figure: `${n(ceiling.recordsPerSecond)} records/s = ${n(ceiling.wireRowsPerSecond)} rows/s sent, ${
      n(ceiling.storedRowsPerSecond)
    } stored`,
    peakRss: mb(ceiling.peakRssMb),
    cpu: `${n(ceiling.cpuPercent)}%`
  })
  const batchCost = clickhouseBatchCost(m.clickhouseWriter, m.clickhouseSmallBatches)
  return [
    {
      measurement: "producer (sentinel produce, idempotent, acks=all)",
      figure: `${n(m.producer.recordsPerSecond)} records/s`
    },
    { measurement: "ceiling: kafkajs consume-only", figure: `${n(m.kafka.recordsPerSecond)} records/s` },
    {
      measurement: "ceiling: PostgreSQL direct (AlertWriter)",
      figure: `${n(m.postgres.alertsPerSecond)} alerts/s = ${n(m.postgres.recordsPerSecond)} records/s`
    },
    chRow("ceiling: ClickHouse direct (AnalyticsWriter)", m.clickhouseWriter),
    chRow("ceiling: ClickHouse direct (raw JSONEachRow)", m.clickhouseRaw),
    chRow(
      `ceiling: ClickHouse direct (AnalyticsWriter, ${n(m.clickhouseSmallBatches.records)} records)`,
      m.clickhouseSmallBatches
    ),
    {
      measurement: "  chDB CPU per analytics batch (fit of the two)",
      figure: `${n(batchCost.fixedMsPerBatch)} ms per batch + ${n(batchCost.microsPerRecord)} µs per record`
    },
    {
      measurement: "Sentinel end to end, full speed",
      figure: `${n(fullSpeed.recordsPerSecond)} records/s`,
      peakRss: mb(fullSpeed.peakRssMb),
      idleRss: mb(fixedRate.idleRssMb),
      cpu: `${n(fullSpeed.cpuPercent)}%`,
      ratio: `${n(ratios.endToEndPerKafkaConsume, 2)} × kafkajs`,
      target: `${rate!.short}; ${ratioTarget!.short}`,
      status: status(rate!.met === null || ratioTarget!.met === null ? null : rate!.met && ratioTarget!.met)
    },
    {
      measurement: "  alert path (PostgreSQL), full speed",
      figure: pathRate(fullSpeed.alertPathRecordsPerSecond, fullSpeed.latency, "alerts"),
      latency: pathLatency(fullSpeed.latency, "alerts"),
      ratio: `${n(ratios.alertPathPerPostgresDirect, 2)} × PG direct`
    },
    {
      measurement: "  analytics path (ClickHouse), full speed",
      figure: pathRate(fullSpeed.analyticsPathRecordsPerSecond, fullSpeed.latency, "analytics"),
      latency: pathLatency(fullSpeed.latency, "analytics"),
      ratio: `${n(ratios.analyticsPathPerClickHouseWriter, 2)} × writer, ${
        n(ratios.analyticsPathPerClickHouseRaw, 2)
      } × raw`
    },
    {
      measurement: "  outbox relay, full speed",
      figure: `${n(fullSpeed.relay.alertsPerSecond)} alerts/s (as alerts came)`
    },
    {
      measurement: `outbox relay, backlog of ${n(m.relayBacklog.alerts)} alerts`,
      figure: `${n(m.relayBacklog.alertsPerSecond)} alerts/s`,
      peakRss: mb(m.relayBacklog.peakRssMb),
      target: relayTarget!.short,
      status: status(relayTarget!.met)
    },
    {
      measurement: `Sentinel at ${n(fixedRate.rate)} records/s`,
      figure: `${n(fixedRate.producedPerSecond)} records/s produced`,
      peakRss: mb(fixedRate.peakRssMb),
      idleRss: mb(fixedRate.idleRssMb),
      cpu: `${n(fixedRate.cpuPercent)}%`,
      target: p99Target!.short,
      status: status(p99Target!.met)
    },
    {
      measurement: "  alert path",
      figure: meanBatch(fixedRate.latency, "alerts"),
      latency: pathLatency(fixedRate.latency, "alerts")
    },
    {
      measurement: "  analytics path",
      figure: meanBatch(fixedRate.latency, "analytics"),
      latency: pathLatency(fixedRate.latency, "analytics")
    },
    {
      measurement: "memory: peak − idle",
      figure: `${mb(memoryTarget!.measured ?? NaN)} (V8 heap ≤ ${
        mb(Math.max(fullSpeed.peakHeapMb, fixedRate.peakHeapMb))
      })`,
      target: memoryTarget!.short,
      status: status(memoryTarget!.met)
    }
  ]
}

export const table = (m: Measurements, targets: ReadonlyArray<Target>): string => {
  const rows = rowsOf(m, targets)
  const widths = columns.map(([key, title]) => Math.max(title.length, ...rows.map((row) => (row[key] ?? "").length)))
  const line = (cells: ReadonlyArray<string>) => cells.map((cell, i) => cell.padEnd(widths[i]!)).join("  ").trimEnd()
  return [
    line(columns.map(([, title]) => title)),
    line(widths.map((width) => "-".repeat(width))),
    ...rows.map((row) => line(columns.map(([key]) => row[key] ?? "")))
  ].join("\n")
}

export const notes = (m: Measurements): ReadonlyArray<string> => [
  ...["full speed", "fixed rate"].flatMap((run) => {
    const latency = run === "full speed" ? m.fullSpeed.latency : m.fixedRate.latency
    return "unavailable" in latency ? [`${run}: ${latency.unavailable}`] : []
  }),
  `Sentinel's records/s run from the ${m.fullSpeed.from} to the last record durable (both groups committed, every ` +
  `alert's outbox row published), polled every 250 ms; from the daemon's start: ${
    n(m.fullSpeed.recordsPerSecondFromStart)
  } records/s.`,
  "Full-speed latency counts from each record's Kafka timestamp, so it includes the time the records waited in Kafka " +
  "before the daemon started.",
  ...(m.fixedRate.producedPerSecond < 0.95 * m.fixedRate.rate
    ? [
      `the producer reached ${n(m.fixedRate.producedPerSecond)} of the ${n(m.fixedRate.rate)} records/s asked for: ` +
      "the fixed-rate latency is at that rate"
    ]
    : []),
  "Ceilings time only their writes (records are regenerated from the same seed and decoded between timed stretches); " +
  "CPU is of one core (100% = one core busy); idle RSS is the fixed-rate daemon's, joined and before any record; " +
  "V8 heap is the JavaScript share of the daemon's memory (from /metrics), the rest of its RSS is native (chDB, buffers)."
]

export const writeResults = (directory: string, stamp: string, results: unknown): string => {
  fs.mkdirSync(directory, { recursive: true })
  const file = path.join(directory, `bench-${stamp}.json`)
  const text = `${JSON.stringify(results, null, 2)}\n`
  fs.writeFileSync(file, text)
  fs.writeFileSync(path.join(directory, "latest.json"), text)
  return file
}
