/**
 * Sentinel measured end to end: the daemon started on a deployment of its own (database, chDB folder,
 * consumer groups, HTTP port) and watched from outside every 250 ms until every record is durable:
 * both consumer groups have committed everything and every alert's outbox row is published.
 *
 * - at full speed, on the records produced beforehand;
 * - at a fixed rate, started on empty topics first (its idle memory is read then), with the records
 *   produced while it runs.
 */
import { Duration, Effect } from "effect"
import * as path from "node:path"
import type { SentinelSettings, Topics } from "../../src/config/Config.ts"
import { plan, type PlanTally } from "../../src/produce/DetectorOutput.ts"
import { publish } from "../../src/produce/Producer.ts"
import { ensureTopics, kafkaClient, topicList } from "../../src/source/KafkaSource.ts"
import { freePort, sleep } from "../stack/process.ts"
import type { Cleanup } from "./cleanup.ts"
import { type Daemon, ProcessSampler, sentinelCommand, startDaemon } from "./daemon.ts"
import {
  freshClickHouseFolder,
  freshDatabase,
  removeKafkaResourcesLater,
  settingsFor,
  topicEnv,
  topicsNamed,
  uniqueName
} from "./deployment.ts"
import { Progress, type Scrape } from "./progress.ts"
import { histogramQuantile, histograms, parseExposition } from "./quantiles.ts"
import { type Dataset, planOptions } from "./records.ts"

const log = (line: string) => process.stderr.write(`[bench] ${line}\n`)

/** Where the daemons write their logs, and what the stack provides. */
export interface RunContext {
  readonly cleanup: Cleanup
  readonly stack: Readonly<Record<string, string>>
  readonly tuning: Readonly<Record<string, string>>
  readonly tracing: boolean
  readonly logDir: string
  readonly timeoutMs: number
  /** Whether each daemon writes CPU profiles beside its log (in `<run>-profile/`). */
  readonly profile: boolean
}

export interface LatencyQuantiles {
  /** Records observed. */
  readonly count: number
  /** Seconds. */
  readonly p50: number
  readonly p95: number
  readonly p99: number
  /** Records per batch on that path, on average: how full the batcher's batches were. */
  readonly meanBatch: number
}

/** Kafka timestamp → durable, per path, from the daemon's histogram; or why it could not be read. */
export type Latency =
  | { readonly byPath: Readonly<Record<string, LatencyQuantiles>> }
  | { readonly unavailable: string }

const latencyMetric = "sentinel_end_to_end_latency_seconds"

export const latencyFrom = (scrape: Scrape): Latency => {
  if ("unavailable" in scrape) {
    return { unavailable: `latency n/a: the daemon's /metrics could not be read: ${scrape.unavailable}` }
  }
  const samples = parseExposition(scrape.text)
  const series = histograms(samples, latencyMetric)
  if (series.length === 0) return { unavailable: `latency n/a: /metrics has no ${latencyMetric} histogram` }
  const batchSizes = new Map(
    histograms(samples, "sentinel_batch_size_records").map(({ count, labels, sum }) => [labels.path, sum / count])
  )
  const byPath: Record<string, LatencyQuantiles> = {}
  for (const { buckets, count, labels } of series) {
    byPath[labels.path ?? "all"] = {
      count,
      p50: histogramQuantile(0.5, buckets),
      p95: histogramQuantile(0.95, buckets),
      p99: histogramQuantile(0.99, buckets),
      meanBatch: batchSizes.get(labels.path) ?? NaN
    }
  }
  return { byPath }
}

const recordsConsumed = (scrape: Scrape): number | undefined =>
  "text" in scrape
    ? parseExposition(scrape.text)
      .filter((sample) => sample.name === "sentinel_records_consumed_total")
      .reduce((sum, sample) => sum + sample.value, 0)
    : undefined

/** The daemon's V8 heap in use, MB: what of its resident memory is JavaScript's (the rest is native: chDB, buffers). */
const heapUsedMb = (scrape: Scrape): number | undefined => {
  if (!("text" in scrape)) return undefined
  const sample = parseExposition(scrape.text).find((sample) => sample.name === "nodejs_heap_used_bytes")
  return sample === undefined ? undefined : sample.value / 1024 / 1024
}

interface Deployed {
  readonly env: Record<string, string>
  readonly settings: SentinelSettings
  readonly progress: Progress
  readonly release: () => Promise<void>
}

/**
 * A chDB folder, consumer groups and HTTP port of its own, and a fresh database unless one is given,
 * migrated with `sentinel migrate`; the topics are created when missing.
 */
const deploy = async (
  context: RunContext,
  name: string,
  topics: Topics,
  given?: { readonly url: string; readonly drop: () => Promise<void> }
): Promise<Deployed> => {
  const { cleanup, stack } = context
  const database = given ?? await freshDatabase(cleanup, stack.DATABASE_URL!)
  const folder = freshClickHouseFolder(cleanup)
  const httpPort = await freePort()
  const env: Record<string, string> = {
    ...context.tuning,
    KAFKA_BROKERS: stack.KAFKA_BROKERS!,
    DATABASE_URL: database.url,
    CLICKHOUSE_PATH: folder,
    SENTINEL_GROUP_ID: uniqueName(`bench-${name}`),
    SENTINEL_HTTP_PORT: String(httpPort),
    SENTINEL_LOG_LEVEL: "info",
    ...topicEnv(topics),
    ...(context.tracing && stack.OTEL_EXPORTER_OTLP_ENDPOINT !== undefined
      ? { OTEL_EXPORTER_OTLP_ENDPOINT: stack.OTEL_EXPORTER_OTLP_ENDPOINT }
      : {})
  }
  const settings = await settingsFor(env)
  removeKafkaResourcesLater(cleanup, stack.KAFKA_BROKERS!, {
    groups: [settings.kafka.groupId, settings.kafka.analyticsGroupId]
  })
  await sentinelCommand(env, "migrate")
  await Effect.runPromise(ensureTopics(kafkaClient(settings.kafka), topicList({ topics }), settings.kafka.partitions))
  const progress = await Progress.open({
    brokers: settings.kafka.brokers,
    topics,
    groups: { alerts: settings.kafka.groupId, analytics: settings.kafka.analyticsGroupId },
    databaseUrl: database.url,
    httpPort
  })
  const closeProgress = cleanup.add("close the progress connections", () => progress.close())
  return {
    env,
    settings,
    progress,
    release: async () => {
      await closeProgress()
      await database.drop()
    }
  }
}

const launch = (context: RunContext, deployed: Deployed, name: string) => {
  // Past its own shutdown timeout the daemon abandons its work; give it a little longer than that.
  const graceMs = Duration.toMillis(deployed.settings.shutdownTimeout) + 15_000
  const daemon = startDaemon(
    context.cleanup,
    deployed.env,
    path.join(context.logDir, `${name}.log`),
    graceMs,
    context.profile ? path.join(context.logDir, `${name}-profile`) : undefined
  )
  const sampler = new ProcessSampler(daemon.pid)
  const stopSampler = context.cleanup.add("stop sampling the daemon", () => sampler.stop())
  return { daemon, sampler, stopSampler, startedAt: performance.now() }
}

/** Seconds since the daemon was started at which each thing was first seen. */
export interface Timeline {
  /** Both consumer groups joined and assigned. */
  joined?: number
  /** The first record taken from Kafka (`sentinel_records_consumed_total` > 0), when /metrics shows it. */
  firstRecord?: number
  /** The alert path's group has committed every record. */
  alertsDurable?: number
  /** The analytics path's group has committed every record. */
  analyticsDurable?: number
  /** Every alert's outbox row is published. */
  outboxPublished?: number
}

const failIfExited = (daemon: Daemon) => {
  if (daemon.hasExited()) {
    throw new Error(
      `sentinel run exited before every record was durable; see ${daemon.logFile}:\n${daemon.outputTail()}`
    )
  }
}

/**
 * Polls every 250 ms until every record is durable and every alert published. Times are taken when
 * a poll's answer arrives, so each is late by at most a poll.
 */
const watchUntilDrained = async (
  daemon: Daemon,
  progress: Progress,
  startedAt: number,
  alerts: number,
  timeoutMs: number,
  timeline: Timeline
): Promise<{ readonly timeline: Timeline; readonly drained: number; readonly peakHeapMb: number }> => {
  const since = () => (performance.now() - startedAt) / 1000
  const deadline = performance.now() + timeoutMs
  // The first record is only trusted from /metrics if a scrape showed none consumed before it.
  let sawNoneConsumed = false
  // NaN until /metrics has answered once: the report then says so rather than show a zero.
  let peakHeapMb = NaN
  for (;;) {
    failIfExited(daemon)
    if (performance.now() > deadline) {
      throw new Error(
        `not every record durable after ${timeoutMs / 1000}s (seen so far: ${JSON.stringify(timeline)}); ` +
          `see ${daemon.logFile}`
      )
    }
    const polled = performance.now()
    const scrape = await progress.scrape()
    const heap = heapUsedMb(scrape)
    if (heap !== undefined) peakHeapMb = Number.isNaN(peakHeapMb) ? heap : Math.max(peakHeapMb, heap)
    if (timeline.firstRecord === undefined) {
      const consumed = recordsConsumed(scrape)
      if (consumed === 0) sawNoneConsumed = true
      else if (consumed !== undefined && sawNoneConsumed) timeline.firstRecord = since()
    }
    if (timeline.joined === undefined && (await progress.joined())) timeline.joined = since()
    if (timeline.alertsDurable === undefined && (await progress.lag(progress.groups.alerts)) === 0) {
      timeline.alertsDurable = since()
    }
    if (timeline.analyticsDurable === undefined && (await progress.lag(progress.groups.analytics)) === 0) {
      timeline.analyticsDurable = since()
    }
    if (timeline.outboxPublished === undefined && (await progress.published()) === alerts) {
      timeline.outboxPublished = since()
    }
    if (
      timeline.alertsDurable !== undefined && timeline.analyticsDurable !== undefined &&
      timeline.outboxPublished !== undefined
    ) {
      return {
        timeline,
        drained: Math.max(timeline.alertsDurable, timeline.analyticsDurable, timeline.outboxPublished),
        peakHeapMb
      }
    }
    await sleep(Math.max(0, 250 - (performance.now() - polled)))
  }
}

/** The outbox relay's work, from `outbox.claimed_at` and `published_at`. */
export interface Relay {
  readonly alerts: number
  readonly claims: number
  /** From the first claim to the last publication. */
  readonly seconds: number
  readonly alertsPerSecond: number
}

const relayOf = async (progress: Progress): Promise<Relay> => {
  const relay = await progress.relay()
  return {
    alerts: relay.rows,
    claims: relay.claims,
    seconds: relay.seconds,
    alertsPerSecond: relay.rows / relay.seconds
  }
}

const stopCleanly = async (daemon: Daemon) => {
  const exit = await daemon.stop()
  if (exit.code !== 0) {
    throw new Error(
      `sentinel run did not stop cleanly (${JSON.stringify(exit)}); see ${daemon.logFile}:\n${daemon.outputTail()}`
    )
  }
}

export interface FullSpeedRun {
  readonly records: number
  readonly alerts: number
  readonly timeline: Timeline
  /** What the measured span starts at: the first record consumed (from /metrics) or, without it, the groups joined. */
  readonly from: "first record consumed" | "consumer groups joined"
  /** From `from` until every record is durable and every alert published. */
  readonly seconds: number
  readonly recordsPerSecond: number
  /** Daemon start → all durable, start-up included. */
  readonly recordsPerSecondFromStart: number
  /** Per path, from `from` until its group has committed everything. */
  readonly alertPathRecordsPerSecond: number
  readonly analyticsPathRecordsPerSecond: number
  /** Bounded by how fast the alert path made alerts. */
  readonly relay: Relay
  readonly peakRssMb: number
  /** The V8 heap's peak, from /metrics every 250 ms: the JavaScript share of the peak RSS. */
  readonly peakHeapMb: number
  /** Over the measured span. */
  readonly cpuPercent: number
  readonly latency: Latency
}

/** The daemon on the topics produced beforehand, from its start until all of it is durable. */
export const fullSpeedRun = async (context: RunContext, data: Dataset, tally: PlanTally): Promise<FullSpeedRun> => {
  const deployed = await deploy(context, "full-speed", data.topics)
  const { daemon, sampler, startedAt, stopSampler } = launch(context, deployed, "sentinel-full-speed")
  log(`sentinel (full speed): started pid ${daemon.pid}, waiting until ${tally.records} records are durable`)
  const watched = await watchUntilDrained(daemon, deployed.progress, startedAt, tally.alerts, context.timeoutMs, {})
  const drainedAt = startedAt + watched.drained * 1000
  sampler.sample()
  const latency = latencyFrom(await deployed.progress.scrape())
  const relay = await relayOf(deployed.progress)
  await stopSampler()
  await stopCleanly(daemon)
  const { timeline } = watched
  const fromFirstRecord = timeline.firstRecord !== undefined
  const from = timeline.firstRecord ?? timeline.joined
  if (from === undefined) throw new Error("the daemon's consumer groups were never seen joined")
  const span = (until: number) => until - from
  await deployed.release()
  return {
    records: tally.records,
    alerts: tally.alerts,
    timeline,
    from: fromFirstRecord ? "first record consumed" : "consumer groups joined",
    seconds: span(watched.drained),
    recordsPerSecond: tally.records / span(watched.drained),
    recordsPerSecondFromStart: tally.records / watched.drained,
    alertPathRecordsPerSecond: tally.records / span(timeline.alertsDurable!),
    analyticsPathRecordsPerSecond: tally.records / span(timeline.analyticsDurable!),
    relay,
    peakRssMb: sampler.peakRssMb(-Infinity, drainedAt),
    peakHeapMb: watched.peakHeapMb,
    cpuPercent: sampler.cpuPercent(startedAt + from * 1000, drainedAt),
    latency
  }
}

export interface FixedRateRun {
  readonly records: number
  readonly alerts: number
  /** As asked. */
  readonly rate: number
  /** As the producer achieved it. */
  readonly producedPerSecond: number
  /** From the last record produced until all of it was durable. */
  readonly drainSeconds: number
  /** Resident memory once started and joined, before any record: the median over 3 s. */
  readonly idleRssMb: number
  readonly peakRssMb: number
  readonly peakHeapMb: number
  /** While producing and draining. */
  readonly cpuPercent: number
  readonly latency: Latency
}

/**
 * The daemon started on empty topics (its idle memory read once its groups have joined), then fed at
 * a fixed rate by the project's producer until `records` are sent, then watched until all is durable.
 * The records are generated before the daemon starts, so that the producer's share of the machine is
 * its sending alone.
 */
export const fixedRateRun = async (
  context: RunContext,
  data: Dataset,
  rate: number,
  records: number
): Promise<FixedRateRun> => {
  const topics = topicsNamed(uniqueName("bench-rate"))
  const fixedRateData: Dataset = { ...data, count: records, topics, start: new Date().toISOString() }
  removeKafkaResourcesLater(context.cleanup, context.stack.KAFKA_BROKERS!, { topics })
  // Generated before the daemon starts: while it runs, the producer only sends.
  const messages = [...plan(planOptions(fixedRateData))]
  const deployed = await deploy(context, "fixed-rate", topics)
  const { daemon, sampler, startedAt, stopSampler } = launch(context, deployed, "sentinel-fixed-rate")
  log(`sentinel (fixed rate): started pid ${daemon.pid} on empty topics, waiting until it is idle`)
  const joinDeadline = performance.now() + 120_000
  while (!(await deployed.progress.joined())) {
    failIfExited(daemon)
    if (performance.now() > joinDeadline) throw new Error(`the daemon's consumer groups did not join within 120 s`)
    await sleep(250)
  }
  const joined = (performance.now() - startedAt) / 1000
  await sleep(2_000)
  const idleFrom = performance.now()
  await sleep(3_000)
  const idleRssMb = sampler.medianRssMb(idleFrom, performance.now())
  log(`sentinel (fixed rate): idle at ${idleRssMb.toFixed(0)} MB; producing ${records} records at ${rate}/s`)
  const producing = performance.now()
  const tally = await Effect.runPromise(publish(deployed.settings.kafka, messages, { rate }))
  messages.length = 0 // hundreds of MB the rest of the run does not need
  const produced = performance.now()
  const watched = await watchUntilDrained(
    daemon,
    deployed.progress,
    startedAt,
    tally.alerts,
    context.timeoutMs,
    { joined }
  )
  const drainedAt = startedAt + watched.drained * 1000
  sampler.sample()
  const latency = latencyFrom(await deployed.progress.scrape())
  await stopSampler()
  await stopCleanly(daemon)
  await deployed.release()
  return {
    records: tally.records,
    alerts: tally.alerts,
    rate,
    producedPerSecond: tally.records / ((produced - producing) / 1000),
    drainSeconds: Math.max(0, (drainedAt - produced) / 1000),
    idleRssMb,
    peakRssMb: sampler.peakRssMb(-Infinity, drainedAt),
    peakHeapMb: watched.peakHeapMb,
    cpuPercent: sampler.cpuPercent(producing, drainedAt),
    latency
  }
}

export interface RelayBacklogRun extends Relay {
  readonly peakRssMb: number
}

/**
 * The relay's own speed: the daemon started on empty topics over a database whose outbox already
 * holds `alerts` unpublished rows (the PostgreSQL ceiling's), watched until all are published.
 */
export const relayBacklogRun = async (
  context: RunContext,
  database: { readonly url: string; readonly drop: () => Promise<void> },
  alerts: number
): Promise<RelayBacklogRun> => {
  const topics = topicsNamed(uniqueName("bench-relay"))
  removeKafkaResourcesLater(context.cleanup, context.stack.KAFKA_BROKERS!, { topics })
  const deployed = await deploy(context, "relay", topics, database)
  const { daemon, sampler, startedAt, stopSampler } = launch(context, deployed, "sentinel-relay-backlog")
  log(`sentinel (outbox backlog): started pid ${daemon.pid}, waiting until ${alerts} waiting alerts are relayed`)
  const watched = await watchUntilDrained(daemon, deployed.progress, startedAt, alerts, context.timeoutMs, {})
  sampler.sample()
  const relay = await relayOf(deployed.progress)
  await stopSampler()
  await stopCleanly(daemon)
  await deployed.release()
  return { ...relay, peakRssMb: sampler.peakRssMb(-Infinity, startedAt + watched.drained * 1000) }
}
