/**
 * The daemon's measured numbers, as Effect metrics, and their Prometheus text exposition for
 * `/metrics`. Metrics that belong to one module (the breaker's state, retries, fiber restarts) are
 * defined there; the pipeline's are here. Everything in Effect's registry is exposed, plus the
 * process's own figures (RSS, CPU, heap), which Effect does not keep.
 */
import { Metric, MetricBoundaries, MetricState, Option } from "effect"

const counter = (name: string, description: string) => Metric.counter(name, { description, incremental: true })

const seconds = MetricBoundaries.fromIterable([
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.075,
  0.1,
  0.15,
  0.2,
  0.3,
  0.4,
  0.5,
  0.75,
  1,
  1.5,
  2,
  3,
  5,
  7.5,
  10,
  20,
  30,
  60,
  120,
  300
])

/** Tagged `path` and `topic`. */
export const recordsConsumed = counter("sentinel_records_consumed_total", "Records taken from Kafka")
/** Tagged `path` and `topic`. */
export const recordsDecoded = counter("sentinel_records_decoded_total", "Records decoded and routed to a table")
/** Tagged `reason`: the dead letter's kind. */
export const deadLetters = counter("sentinel_dead_letters_total", "Records stored as dead letters, by reason")
/** Tagged `path`. */
export const batchesTotal = counter("sentinel_batches_total", "Batches made durable and committed")
/** Tagged `path`. */
export const batchSize = Metric.histogram(
  "sentinel_batch_size_records",
  MetricBoundaries.fromIterable([1, 10, 50, 100, 250, 500, 1_000, 2_000, 5_000, 10_000]),
  "Records per batch"
)
/** Tagged `path`. */
export const batchDuration = Metric.histogram(
  "sentinel_batch_duration_seconds",
  seconds,
  "From a batch's close to its commit: decode, write, commit"
)
/** Tagged `path`; one observation per record. */
export const endToEndLatency = Metric.histogram(
  "sentinel_end_to_end_latency_seconds",
  seconds,
  "From a record's Kafka timestamp to its batch being durable and committed"
)
/** Tagged `sink`. */
export const sinkWriteDuration = Metric.histogram(
  "sentinel_sink_write_duration_seconds",
  seconds,
  "One write of a batch to a store, retries included"
)
/** Tagged `sink` and `table`. */
export const sinkRowsWritten = counter("sentinel_sink_rows_written_total", "Rows written to a store's table")
export const outboxBacklog = Metric.gauge("sentinel_outbox_backlog_rows", {
  description: "Outbox rows not yet relayed to ClickHouse"
})
export const outboxOldestAge = Metric.gauge("sentinel_outbox_oldest_age_seconds", {
  description: "Age of the oldest outbox row not yet relayed; 0 when none"
})
export const outboxRelayed = counter("sentinel_outbox_relayed_total", "Alerts relayed from the outbox to ClickHouse")
/** Tagged `group`, `topic` and `partition`. */
export const consumerLag = Metric.gauge("sentinel_consumer_lag_records", {
  description: "Records of a partition not yet committed by a consumer group"
})
export const ready = Metric.gauge("sentinel_ready", { description: "1 when the daemon is ready, else 0" })

const escape = (value: string) => value.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, "\\\"")

const labels = (tags: ReadonlyArray<readonly [string, string]>) =>
  tags.length === 0 ? "" : `{${tags.map(([key, value]) => `${key}="${escape(value)}"`).join(",")}}`

const number = (value: number | bigint) =>
  typeof value === "bigint"
    ? value.toString()
    : Number.isNaN(value)
    ? "NaN"
    : value === Infinity
    ? "+Inf"
    : value === -Infinity
    ? "-Inf"
    : String(value)

interface Family {
  readonly type: "counter" | "gauge" | "histogram" | "summary" | "untyped"
  readonly help: string
  readonly lines: Array<string>
}

const processFamilies = (startedAt: number): Record<string, Family> => {
  const usage = process.cpuUsage()
  return {
    process_resident_memory_bytes: {
      type: "gauge",
      help: "Resident set size",
      lines: [`process_resident_memory_bytes ${process.memoryUsage.rss()}`]
    },
    process_cpu_seconds_total: {
      type: "counter",
      help: "User and system CPU time",
      lines: [`process_cpu_seconds_total ${(usage.user + usage.system) / 1e6}`]
    },
    process_start_time_seconds: {
      type: "gauge",
      help: "Start time since the Unix epoch",
      lines: [`process_start_time_seconds ${Math.floor(startedAt / 1000)}`]
    },
    nodejs_heap_used_bytes: {
      type: "gauge",
      help: "V8 heap in use",
      lines: [`nodejs_heap_used_bytes ${process.memoryUsage().heapUsed}`]
    }
  }
}

const startedAt = Date.now() - process.uptime() * 1000

/** Every metric in Effect's registry and the process's figures, in Prometheus text format 0.0.4. */
export const exposition = (): string => {
  const families: Record<string, Family> = {}
  const family = (
    name: string,
    type: Family["type"],
    help: Option.Option<string>
  ) => (families[name] ??= { type, help: Option.getOrElse(help, () => name), lines: [] })
  for (const { metricKey, metricState } of Metric.unsafeSnapshot()) {
    const name = metricKey.name
    const tags = metricKey.tags.map((tag) => [tag.key, tag.value] as const)
    if (MetricState.isCounterState(metricState)) {
      family(name, "counter", metricKey.description).lines.push(`${name}${labels(tags)} ${number(metricState.count)}`)
    } else if (MetricState.isGaugeState(metricState)) {
      family(name, "gauge", metricKey.description).lines.push(`${name}${labels(tags)} ${number(metricState.value)}`)
    } else if (MetricState.isHistogramState(metricState)) {
      const lines = family(name, "histogram", metricKey.description).lines
      for (const [bound, cumulative] of metricState.buckets) {
        lines.push(`${name}_bucket${labels([...tags, ["le", number(bound)]])} ${cumulative}`)
      }
      if (!metricState.buckets.some(([bound]) => bound === Infinity)) {
        lines.push(`${name}_bucket${labels([...tags, ["le", "+Inf"]])} ${metricState.count}`)
      }
      lines.push(`${name}_sum${labels(tags)} ${number(metricState.sum)}`)
      lines.push(`${name}_count${labels(tags)} ${metricState.count}`)
    } else if (MetricState.isFrequencyState(metricState)) {
      const lines = family(name, "counter", metricKey.description).lines
      for (const [key, count] of metricState.occurrences) {
        lines.push(`${name}${labels([...tags, ["key", key]])} ${count}`)
      }
    }
  }
  Object.assign(families, processFamilies(startedAt))
  return Object.entries(families)
    .filter(([, { lines }]) => lines.length > 0)
    .map(([name, { help, lines, type }]) =>
      [`# HELP ${name} ${help.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")}`, `# TYPE ${name} ${type}`, ...lines]
        .join("\n")
    )
    .join("\n") + "\n"
}
