/**
 * `npm run bench [-- --records N --rate R --rate-seconds S]`: Sentinel measured against the ceilings
 * of its own parts, in one run on the local stack (issue #7).
 *
 * 1. Produces N contract-shaped records (10% MEDIUM or higher, none malformed or re-sent) to fresh
 *    topics with the project's producer, timed.
 * 2. Ceilings on the same data: kafkajs consuming it doing nothing; the AlertWriter writing its alerts
 *    straight to a fresh database; the AnalyticsWriter, and raw inserts of the same rows, writing its
 *    analytics rows straight to fresh chDB folders (each in a child process); the AnalyticsWriter again
 *    in small batches, so that what a batch costs and what a record costs can be told apart.
 * 3. Sentinel (`bin/sentinel.js run`) on those topics until every record is durable and every alert
 *    relayed; then over the PostgreSQL ceiling's database, whose outbox holds every alert unpublished,
 *    for the relay's own speed; then on empty topics fed at a fixed rate (records generated beforehand),
 *    for latency and idle memory.
 * 4. Prints a table with the ratios and issue #7's targets, and writes it all to
 *    .sentinel/bench/bench-<time>.json and .sentinel/bench/latest.json.
 *
 * Every figure comes from this run's measurements. Whatever the run starts or creates (stack
 * services, topics, groups, databases, chDB folders, daemons) is removed at the end, on failure and
 * on Ctrl-C. SENTINEL_* tuning variables in the environment are passed to the daemon and the ceilings.
 */
import { Duration, Effect } from "effect"
import * as path from "node:path"
import { parseArgs } from "node:util"
import { plan, type PlanTally, tally as planTally } from "../src/produce/DetectorOutput.ts"
import { produce } from "../src/produce/Producer.ts"
import { ensureTopics, kafkaClient, topicList } from "../src/source/KafkaSource.ts"
import { runWithCleanup } from "./bench/cleanup.ts"
import { clickhouseCeiling } from "./bench/clickhouseCeiling.ts"
import {
  bringStackUp,
  freshClickHouseFolder,
  freshDatabase,
  removeKafkaResourcesLater,
  settingsFor,
  topicEnv,
  topicsNamed,
  tuningEnv,
  uniqueName
} from "./bench/deployment.ts"
import { kafkaConsumeCeiling } from "./bench/kafkaCeiling.ts"
import { postgresCeiling } from "./bench/postgresCeiling.ts"
import { type Dataset, planOptions } from "./bench/records.ts"
import {
  clickhouseBatchCost,
  machine,
  type Measurements,
  notes,
  ratiosOf,
  table,
  targetsOf,
  writeResults
} from "./bench/report.ts"
import { fixedRateRun, fullSpeedRun, relayBacklogRun } from "./bench/sentinelRun.ts"
import { home } from "./stack/layout.ts"

const usage = `usage: npm run bench [-- options]
  --records N        records produced for the full-speed measurements (default 200000)
  --rate R           records per second of the fixed-rate run (default 5000)
  --rate-seconds S   how long the fixed-rate run produces (default 30)
  --seed S           the generator's seed (default 1)
  --timeout S        longest wait for a run to make every record durable, in seconds (default 600)
  --no-tracing       run the daemon without exporting traces to the stack's Jaeger
  --profile          write each daemon's V8 CPU profiles beside its log (.sentinel/bench/logs/<time>/)`

const log = (line: string) => process.stderr.write(`[bench] ${line}\n`)

const positive = (values: Record<string, unknown>, name: string, fallback: number): number => {
  const raw = values[name]
  if (raw === undefined) return fallback
  const value = Number(raw)
  if (!Number.isInteger(value) || value <= 0) {
    throw new Error(`--${name} expects a positive integer, got "${raw}"\n${usage}`)
  }
  return value
}

const parseOptions = () => {
  const { values } = parseArgs({
    options: {
      records: { type: "string" },
      rate: { type: "string" },
      "rate-seconds": { type: "string" },
      seed: { type: "string" },
      timeout: { type: "string" },
      "no-tracing": { type: "boolean" },
      profile: { type: "boolean" },
      help: { type: "boolean", short: "h" }
    }
  })
  if (values.help === true) {
    process.stdout.write(`${usage}\n`)
    process.exit(0)
  }
  return {
    records: positive(values, "records", 200_000),
    rate: positive(values, "rate", 5_000),
    rateSeconds: positive(values, "rate-seconds", 30),
    seed: positive(values, "seed", 1),
    timeoutSeconds: positive(values, "timeout", 600),
    tracing: values["no-tracing"] !== true,
    profile: values.profile === true
  }
}

/** The small-batch ClickHouse ceiling: batches of this size, over this many records at most. */
const smallBatch = 500
const smallBatchRecords = 20_000

const perSecond = (records: number, seconds: number) => ({ records, seconds, recordsPerSecond: records / seconds })

runWithCleanup(async (cleanup) => {
  const options = parseOptions()
  const date = new Date()
  const stamp = date.toISOString().replace(/[:.]/g, "-")
  const benchDir = path.join(home, "bench")
  const host = machine()
  log(
    `${date.toISOString()} on ${host.cores} cores (${host.model}), ${host.memoryGb.toFixed(1)} GB; load ${
      host.loadAverage.map((l) => l.toFixed(2)).join(" ")
    }`
  )
  const stack = bringStackUp(cleanup)
  const tuning = tuningEnv()
  const topics = topicsNamed(uniqueName("bench"))
  const settings = await settingsFor({
    ...tuning,
    KAFKA_BROKERS: stack.KAFKA_BROKERS!,
    DATABASE_URL: stack.DATABASE_URL!,
    ...topicEnv(topics)
  })
  const data: Dataset = {
    count: options.records,
    seed: options.seed,
    alertShare: 0.1,
    start: date.toISOString(),
    topics,
    partitions: settings.kafka.partitions
  }
  const kafkaCeilingGroup = uniqueName("bench-kafka-ceiling")
  removeKafkaResourcesLater(cleanup, stack.KAFKA_BROKERS!, { topics, groups: [kafkaCeilingGroup] })

  log(`producing ${data.count} records to fresh topics (${topics.detections}, …)`)
  // Created first, so that the producer's time is its sending alone.
  await Effect.runPromise(ensureTopics(kafkaClient(settings.kafka), topicList({ topics }), data.partitions))
  const producing = performance.now()
  const tally = await Effect.runPromise(produce(settings.kafka, planOptions(data)))
  const producer = perSecond(tally.records, (performance.now() - producing) / 1000)
  if (tally.records !== data.count || tally.duplicates !== 0) {
    throw new Error(`the producer published ${tally.records} records (${tally.duplicates} re-sent), not ${data.count}`)
  }
  log(`producer: ${producer.recordsPerSecond.toFixed(0)} records/s; ${tally.alerts} alerts among them`)

  log("ceiling: kafkajs consume-only")
  const kafka = await kafkaConsumeCeiling({
    brokers: settings.kafka.brokers,
    topics,
    groupId: kafkaCeilingGroup,
    expected: tally.records,
    timeoutMs: options.timeoutSeconds * 1000
  })
  log(`kafkajs consume-only: ${kafka.recordsPerSecond.toFixed(0)} records/s`)

  log("ceiling: PostgreSQL direct (AlertWriter)")
  const database = await freshDatabase(cleanup, stack.DATABASE_URL!)
  const postgres = await postgresCeiling(data, settings, database.url, tally.alerts)
  log(`PostgreSQL direct: ${postgres.alertsPerSecond.toFixed(0)} alerts/s`)

  const clickhouse = async (mode: "writer" | "raw", batchSize: number, dataset: Dataset, expected: PlanTally) => {
    log(`ceiling: ClickHouse direct (${mode}, batches of ${batchSize})`)
    const ceiling = await clickhouseCeiling(cleanup, {
      mode,
      path: freshClickHouseFolder(cleanup),
      data: dataset,
      batchSize,
      analyticsTtlDays: settings.clickhouse.analyticsTtlDays,
      metricsTtlDays: settings.clickhouse.metricsTtlDays
    }, expected)
    log(`ClickHouse direct (${mode}, batches of ${batchSize}): ${ceiling.recordsPerSecond.toFixed(0)} records/s`)
    return ceiling
  }
  const clickhouseWriter = await clickhouse("writer", settings.batch.maxRecords, data, tally)
  const clickhouseRaw = await clickhouse("raw", settings.batch.maxRecords, data, tally)
  // Small batches, as a moderate rate makes them: with the full-size run, what each batch costs
  // whatever its size, and what each record adds.
  const smallData: Dataset = { ...data, count: Math.min(data.count, smallBatchRecords) }
  const clickhouseSmallBatches = await clickhouse(
    "writer",
    Math.min(smallBatch, settings.batch.maxRecords),
    smallData,
    planTally(plan(planOptions(smallData)))
  )

  const context = {
    cleanup,
    stack,
    tuning,
    tracing: options.tracing,
    profile: options.profile,
    logDir: path.join(benchDir, "logs", stamp),
    timeoutMs: options.timeoutSeconds * 1000
  }
  const fullSpeed = await fullSpeedRun(context, data, tally)
  log(`sentinel (full speed): ${fullSpeed.recordsPerSecond.toFixed(0)} records/s`)
  // The PostgreSQL ceiling's database holds every alert in its outbox, unpublished: the relay's backlog.
  const relayBacklog = await relayBacklogRun(context, database, postgres.alerts)
  log(`outbox relay on a backlog: ${relayBacklog.alertsPerSecond.toFixed(0)} alerts/s`)
  const fixedRate = await fixedRateRun(context, data, options.rate, options.rate * options.rateSeconds)

  const measurements: Measurements = {
    producer,
    kafka,
    postgres,
    clickhouseWriter,
    clickhouseRaw,
    clickhouseSmallBatches,
    fullSpeed,
    fixedRate,
    relayBacklog
  }
  const targets = targetsOf(measurements)
  const file = writeResults(benchDir, stamp, {
    date: date.toISOString(),
    machine: host,
    options,
    settings: {
      batchMaxRecords: settings.batch.maxRecords,
      batchMaxWaitMs: Duration.toMillis(settings.batch.maxWait),
      maxInFlight: settings.kafka.maxInFlight,
      partitions: settings.kafka.partitions,
      pgMaxConnections: settings.postgres.maxConnections,
      outboxBatchSize: settings.outbox.batchSize
    },
    tuning,
    data: tally,
    measurements,
    ratios: ratiosOf(measurements),
    clickhouseBatchCost: clickhouseBatchCost(clickhouseWriter, clickhouseSmallBatches),
    targets,
    notes: notes(measurements),
    logs: context.logDir
  })
  process.stdout.write(
    [
      "",
      `Sentinel benchmark, ${date.toISOString()}: ${host.cores} cores (${host.model}), ${
        host.memoryGb.toFixed(1)
      } GB memory, Node ${host.node}; load average at start ${host.loadAverage.map((l) => l.toFixed(2)).join(" ")}`,
      `${tally.records.toLocaleString("en-US")} records (${
        tally.alerts.toLocaleString("en-US")
      } alerts), batches of ${settings.batch.maxRecords}; fixed rate ${
        fixedRate.records.toLocaleString("en-US")
      } records at ${options.rate}/s`,
      "",
      table(measurements, targets),
      "",
      ...notes(measurements).map((note) => `- ${note}`),
      "",
      `results: ${file}`,
      ""
    ].join("\n")
  )
})
