/**
 * The consumer as supervised streams: source → batcher → router → sink → offset commit.
 *
 * Sentinel runs two paths, each its own Kafka consumer group over the same topics, so that one
 * store going away never holds the other back:
 * - the **alert path** writes alerts, accounts, audit rows, outbox rows and dead letters to
 *   PostgreSQL (the outbox relay carries the alerts on to ClickHouse);
 * - the **analytics path** writes transactions, detection results and metrics to ClickHouse.
 * When ClickHouse is down, the analytics path waits and Kafka keeps its backlog (its offsets do not
 * move) while alerts keep landing in PostgreSQL; when PostgreSQL is down, the alert path waits
 * the same way. Nothing is held in memory beyond each source's bounded buffer.
 *
 * A batch's offsets are committed only after its write is durable, and every write is idempotent,
 * so a crash anywhere replays work without doubling it.
 */
import {
  ATTR_KAFKA_OFFSET,
  ATTR_MESSAGING_BATCH_MESSAGE_COUNT,
  ATTR_MESSAGING_CONSUMER_GROUP_NAME,
  ATTR_MESSAGING_DESTINATION_NAME,
  ATTR_MESSAGING_DESTINATION_PARTITION_ID,
  ATTR_MESSAGING_MESSAGE_CONVERSATION_ID,
  ATTR_MESSAGING_OPERATION_NAME,
  ATTR_MESSAGING_OPERATION_TYPE,
  ATTR_MESSAGING_SYSTEM_NAME,
  MESSAGING_OPERATION_TYPE_VALUE_PROCESS,
  MESSAGING_OPERATION_TYPE_VALUE_SETTLE,
  MESSAGING_SYSTEM_NAME_VALUE_KAFKA
} from "@opentelemetry/semantic-conventions/incubating"
import { Clock, Data, Deferred, Duration, Effect, Metric, MetricLabel, Schedule, Stream } from "effect"
import { batches, commitPoints } from "../batching/Batcher.ts"
import type { SentinelSettings } from "../config/Config.ts"
import { type CircuitBreaker, type CircuitOpenError } from "../resilience/CircuitBreaker.ts"
import { type RetryPolicy, retryTransient } from "../resilience/RetryPolicy.ts"
import { emptyRouted, route, type Routed, topicKinds } from "../routing/Router.ts"
import { AnalyticsWriter } from "../sinks/clickhouse/AnalyticsWriter.ts"
import { AlertWriter } from "../sinks/postgres/AlertWriter.ts"
import type { KafkaRecord } from "../source/KafkaRecord.ts"
import type { KafkaSource } from "../source/KafkaSource.ts"
import * as Metrics from "../telemetry/Metrics.ts"
import { correlationIdOf, correlationIds, formatTraceparent, linksTo } from "../telemetry/TraceContext.ts"

/** A write that took longer than `SENTINEL_SINK_TIMEOUT_MS`: a stalled store, retried like any outage. */
export class SinkTimeout
  extends Data.TaggedError("SinkTimeout")<{ readonly sink: string; readonly after: Duration.Duration }>
{
  readonly classification = "transient" as const
  override get message() {
    return `${this.sink} did not answer within ${Duration.format(this.after)}`
  }
}

/** A store's failure, as its writer classifies it. */
interface Classified {
  readonly classification: "transient" | "permanent"
  readonly message: string
}

export const isTransient = (error: unknown): boolean =>
  typeof error === "object" && error !== null && "classification" in error && error.classification === "transient"

/** What stands between a path and its store: a timeout per write, the store's breaker, the retry policy. */
export interface SinkGuard {
  readonly store: "postgres" | "clickhouse"
  readonly timeout: Duration.Duration
  readonly breaker: CircuitBreaker
  readonly retry: RetryPolicy
}

/**
 * Each attempt is timed out and passes through the breaker; transient failures (the store
 * restarting, a dropped connection, an open breaker) are retried with jittered, capped backoff.
 * While a write waits, the source's bounded buffer fills and consumption pauses, and nothing is
 * committed past it. Past the policy's bound the failure is returned and the path restarts
 * (src/resilience/Supervisor.ts) from its committed offsets.
 */
const guarded = <A, E extends Classified, R>(guard: SinkGuard, write: Effect.Effect<A, E, R>) =>
  write.pipe(
    // Disconnected: a write stuck on a stalled connection is abandoned at once, its interruption
    // (a rollback on that same connection, say) finishing in the background.
    Effect.disconnect,
    Effect.timeoutFail({
      duration: guard.timeout,
      onTimeout: () => new SinkTimeout({ sink: guard.store, after: guard.timeout })
    }),
    guard.breaker.protect,
    retryTransient<E | SinkTimeout>(guard.store, isTransient, guard.retry)
  )

/** The W3C `traceparent` of the current span, stored on outbox rows so the relay can link back to it. */
const currentTraceparent = Effect.map(
  Effect.option(Effect.currentSpan),
  (span) => span._tag === "Some" ? formatTraceparent(span.value) : undefined
)

export interface Path<R> {
  readonly name: "alerts" | "analytics"
  /** The store, as named in a dead letter's kind (`rejected_by_<store>`). */
  readonly store: "postgres" | "clickhouse"
  /**
   * Makes a routed batch durable in the path's store; transient failures are retried inside. Returns
   * the rows written per table.
   */
  readonly persist: (routed: Routed) => Effect.Effect<RowsWritten, Classified | CircuitOpenError, R>
}

/** Rows a write added, per table. */
export type RowsWritten = Readonly<Record<string, number>>

/** PostgreSQL: alerts with their accounts, audit and outbox rows, audit events, and every dead letter. */
export const alertPath = (guard: SinkGuard): Path<AlertWriter> => ({
  name: "alerts",
  store: guard.store,
  persist: (routed) =>
    Effect.gen(function*() {
      const writer = yield* AlertWriter
      const traceparent = yield* currentTraceparent
      const summary = yield* guarded(
        guard,
        writer.write({
          alerts: routed.alerts,
          audits: routed.audits,
          deadLetters: routed.deadLetters,
          ...(traceparent === undefined ? {} : { traceparent })
        })
      )
      return {
        fraud_alerts: summary.alertsCreated,
        outbox: summary.alertsCreated,
        system_audit_log: summary.auditRows,
        dead_letters: summary.deadLetters
      }
    })
})

/** ClickHouse: the analytics rows. Dead letters are the alert path's to store. */
export const analyticsPath = (guard: SinkGuard): Path<AnalyticsWriter> => ({
  name: "analytics",
  store: guard.store,
  persist: (routed) =>
    Effect.flatMap(AnalyticsWriter, (writer) =>
      guarded(
        guard,
        writer.write({ detections: routed.detections, transactions: routed.transactions, metrics: routed.metrics })
      ).pipe(Effect.map((summary) => ({
        transaction_records: summary.transactionRows,
        detection_results: summary.detectionRows,
        performance_metrics: summary.metricRows
      }))))
})

const isPermanent = (error: Classified | CircuitOpenError): error is Classified =>
  "classification" in error && error.classification === "permanent"

/** The consumer group a path reads with. */
const groupOf = (settings: SentinelSettings, path: Path<unknown>) =>
  path.name === "alerts" ? settings.kafka.groupId : settings.kafka.analyticsGroupId

const messagingAttributes = (group: string) => ({
  [ATTR_MESSAGING_SYSTEM_NAME]: MESSAGING_SYSTEM_NAME_VALUE_KAFKA,
  [ATTR_MESSAGING_CONSUMER_GROUP_NAME]: group
})

/** Kafka offsets are decimal strings without leading zeros: the shorter is the smaller. */
const offsetBelow = (a: string, b: string) => a.length !== b.length ? a.length < b.length : a < b

/**
 * What the batch's span says of it from the start: its size, topics, partitions and the offset
 * range of each partition (`sentinel.offsets`: `topic/0:100-199,…`), in messaging semantic conventions
 * where there are some.
 */
const batchAttributes = (path: string, group: string, batch: ReadonlyArray<KafkaRecord>) => {
  const ranges = new Map<string, { readonly topic: string; readonly partition: number; low: string; high: string }>()
  for (const { offset, partition, topic } of batch) {
    const key = `${topic}/${partition}`
    const range = ranges.get(key)
    if (range === undefined) ranges.set(key, { topic, partition, low: offset, high: offset })
    else if (offsetBelow(offset, range.low)) range.low = offset
    else if (offsetBelow(range.high, offset)) range.high = offset
  }
  const topics = [...new Set(Array.from(ranges.values(), (range) => range.topic))]
  const only = ranges.size === 1 ? [...ranges.values()][0] : undefined
  return {
    ...messagingAttributes(group),
    [ATTR_MESSAGING_OPERATION_TYPE]: MESSAGING_OPERATION_TYPE_VALUE_PROCESS,
    [ATTR_MESSAGING_OPERATION_NAME]: "process",
    [ATTR_MESSAGING_BATCH_MESSAGE_COUNT]: batch.length,
    ...(topics.length === 1 ? { [ATTR_MESSAGING_DESTINATION_NAME]: topics[0] } : {}),
    ...(only === undefined ? {} : { [ATTR_MESSAGING_DESTINATION_PARTITION_ID]: String(only.partition) }),
    "sentinel.path": path,
    "sentinel.topics": topics.join(","),
    "sentinel.partitions": [...ranges.keys()].join(","),
    "sentinel.offsets": Array.from(ranges, ([key, { high, low }]) => `${key}:${low}-${high}`).join(",")
  }
}

/** Decodes and routes a batch, in its own span. */
const decode = (kinds: ReturnType<typeof topicKinds>, batch: ReadonlyArray<KafkaRecord>) =>
  Effect.sync(() => route(kinds, batch)).pipe(
    Effect.tap((routed) =>
      Effect.annotateCurrentSpan({
        "sentinel.records": batch.length,
        "sentinel.decoded": batch.length - routed.deadLetters.length,
        "sentinel.dead_letters": routed.deadLetters.length,
        "sentinel.alerts": routed.alerts.length
      })
    ),
    Effect.withSpan("sentinel.decode")
  )

/**
 * The producers' side of the batch on its span: a link to each distinct span named by a record's
 * `traceparent` header, and the records' correlation ids (decoded `correlation_id`, else the
 * `X-Correlation-ID` header), so a transaction can be followed from the detector to the stores.
 */
const linkProducers = (batch: ReadonlyArray<KafkaRecord>, routed: Routed) => {
  const decoded = new Map<KafkaRecord, string>()
  for (const { result, source } of routed.detections) {
    if (result.correlation_id !== undefined) decoded.set(source, result.correlation_id)
  }
  const producers = linksTo(batch, (record) => record.headers.traceparent, (record, count) => {
    const correlationId = correlationIdOf(record, decoded.get(record))
    return {
      [ATTR_MESSAGING_DESTINATION_NAME]: record.topic,
      [ATTR_MESSAGING_DESTINATION_PARTITION_ID]: String(record.partition),
      [ATTR_KAFKA_OFFSET]: Number(record.offset),
      ...(correlationId === undefined ? {} : { [ATTR_MESSAGING_MESSAGE_CONVERSATION_ID]: correlationId }),
      "sentinel.records": count
    }
  })
  const correlation = correlationIds(batch, decoded)
  return Effect.zipRight(
    Effect.linkSpanCurrent(producers.links),
    Effect.annotateCurrentSpan({
      "sentinel.links.dropped": producers.dropped,
      "sentinel.correlation_ids": correlation.ids.join(","),
      "sentinel.correlation_ids.dropped": correlation.dropped
    })
  )
}

/**
 * Persists records, isolating the ones a store refuses for good: a permanent failure splits the
 * batch in halves until the offending record stands alone, which becomes a dead letter (stored by
 * `deadLetters`, the alert path, whichever store refused it) while every other record is persisted.
 */
const persistIsolating = <R, D>(
  kinds: ReturnType<typeof topicKinds>,
  path: Path<R>,
  deadLetters: Path<D>,
  records: ReadonlyArray<KafkaRecord>
): Effect.Effect<void, Classified | CircuitOpenError, R | D> =>
  path.persist(route(kinds, records)).pipe(
    Effect.flatMap((rows) => countRows(path.store, rows)),
    Effect.catchIf(isPermanent, (error) => {
      if (records.length > 1) {
        const middle = Math.ceil(records.length / 2)
        return Effect.zipRight(
          persistIsolating(kinds, path, deadLetters, records.slice(0, middle)),
          persistIsolating(kinds, path, deadLetters, records.slice(middle))
        )
      }
      const deadLetter = { record: records[0]!, kind: `rejected_by_${path.store}`, message: error.message }
      return Effect.logWarning(`${path.store} refused a record: ${error.message}`).pipe(
        Effect.zipRight(deadLetters.persist({ ...emptyRouted(), deadLetters: [deadLetter] })),
        Effect.zipRight(Metric.increment(Metric.tagged(Metrics.deadLetters, "reason", deadLetter.kind)))
      )
    })
  )

const countRows = (sink: string, rows: RowsWritten) =>
  Effect.sync(() => {
    for (const [table, count] of Object.entries(rows)) {
      if (count > 0) {
        Metrics.sinkRowsWritten.unsafeUpdate(count, [
          MetricLabel.make("sink", sink),
          MetricLabel.make("table", table)
        ])
      }
    }
  })

const countPerTopic = (records: ReadonlyArray<{ readonly topic: string }>) => {
  const counts = new Map<string, number>()
  for (const record of records) counts.set(record.topic, (counts.get(record.topic) ?? 0) + 1)
  return counts
}

/** Consumed, decoded and dead-lettered records of a routed batch. Dead letters are counted where stored. */
const countRouted = (path: string, batch: ReadonlyArray<KafkaRecord>, routed: Routed) =>
  Effect.sync(() => {
    const pathLabel = MetricLabel.make("path", path)
    const undecoded = countPerTopic(routed.deadLetters.map((letter) => letter.record))
    for (const [topic, count] of countPerTopic(batch)) {
      const labels = [pathLabel, MetricLabel.make("topic", topic)]
      Metrics.recordsConsumed.unsafeUpdate(count, labels)
      Metrics.recordsDecoded.unsafeUpdate(count - (undecoded.get(topic) ?? 0), labels)
    }
    if (path === "alerts") {
      for (const letter of routed.deadLetters) {
        Metrics.deadLetters.unsafeUpdate(1, [MetricLabel.make("reason", letter.kind)])
      }
    }
  })

/** Once a batch is durable and committed: its size, duration, and each record's end-to-end latency. */
const countDurable = (path: string, batch: ReadonlyArray<KafkaRecord>, startedAt: number) =>
  Effect.map(Clock.currentTimeMillis, (now) => {
    const labels = [MetricLabel.make("path", path)]
    Metrics.batchesTotal.unsafeUpdate(1, labels)
    Metrics.batchSize.unsafeUpdate(batch.length, labels)
    Metrics.batchDuration.unsafeUpdate((now - startedAt) / 1000, labels)
    for (const record of batch) Metrics.endToEndLatency.unsafeUpdate(Math.max(0, now - record.timestamp) / 1000, labels)
  })

const persistBatch = <R, D>(
  settings: SentinelSettings,
  source: KafkaSource,
  path: Path<R>,
  deadLetters: Path<D>,
  batch: ReadonlyArray<KafkaRecord>
) =>
  Effect.gen(function*() {
    const startedAt = yield* Clock.currentTimeMillis
    const kinds = topicKinds(settings.kafka.topics)
    const routed = yield* decode(kinds, batch)
    yield* linkProducers(batch, routed)
    yield* countRouted(path.name, batch, routed)
    const [writeTime] = yield* path.persist(routed).pipe(
      Effect.flatMap((rows) => countRows(path.store, rows)),
      Effect.catchIf(isPermanent, () => persistIsolating(kinds, path, deadLetters, batch)),
      Effect.timed
    )
    Metrics.sinkWriteDuration.unsafeUpdate(Duration.toSeconds(writeTime), [MetricLabel.make("sink", path.store)])
    yield* source.commit(commitPoints(batch)).pipe(
      Effect.tapError((error) => Effect.logWarning(error.message)),
      Effect.retry(Schedule.exponential("100 millis").pipe(Schedule.compose(Schedule.recurs(5)))),
      // A commit refused after a rebalance leaves the records for the partition's new owner to redo,
      // idempotently; it is not a reason to stop.
      Effect.catchAll(() => Effect.void),
      Effect.withSpan("sentinel.commit", {
        kind: "client",
        attributes: {
          ...messagingAttributes(groupOf(settings, path)),
          [ATTR_MESSAGING_OPERATION_TYPE]: MESSAGING_OPERATION_TYPE_VALUE_SETTLE,
          [ATTR_MESSAGING_OPERATION_NAME]: "commit"
        }
      })
    )
    yield* countDurable(path.name, batch, startedAt)
    yield* Effect.logDebug("batch durable").pipe(
      Effect.annotateLogs({
        records: batch.length,
        deadLetters: routed.deadLetters.length,
        alerts: routed.alerts.length,
        millis: (yield* Clock.currentTimeMillis) - startedAt
      })
    )
    return routed
  }).pipe(
    // A root: each batch is a trace of its own, linked to its producers' traces.
    Effect.withSpan("sentinel.batch", {
      root: true,
      kind: "consumer",
      attributes: batchAttributes(path.name, groupOf(settings, path), batch)
    })
  )

/**
 * Runs one path until `stop` completes: then the batch in flight is finished and committed, the
 * records already taken from Kafka go out as one last batch, and the effect returns.
 */
export const run = <R, D>(
  settings: SentinelSettings,
  source: KafkaSource,
  path: Path<R>,
  deadLetters: Path<D>,
  stop: Deferred.Deferred<void>
) =>
  batches(source, settings.batch, Deferred.await(stop)).pipe(
    Stream.mapEffect((batch) => persistBatch(settings, source, path, deadLetters, batch)),
    Stream.runDrain,
    Effect.annotateLogs({ path: path.name })
  )
