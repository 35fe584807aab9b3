/**
 * The consumer as one supervised stream: source → batcher → router → (Postgres ∥ ClickHouse) →
 * offset commit. A batch's offsets are committed only after both of its writes are durable, and
 * both writes are idempotent, so a crash anywhere replays work without doubling it.
 */
import { Deferred, Effect, Schedule, Stream } from "effect"
import { batches, commitPoints } from "../batching/Batcher.ts"
import { Settings } from "../config/Config.ts"
import { route, type Routed, topicKinds } from "../routing/Router.ts"
import { AnalyticsWriter } from "../sinks/clickhouse/AnalyticsWriter.ts"
import { AlertWriter } from "../sinks/postgres/AlertWriter.ts"
import type { KafkaRecord } from "../source/KafkaRecord.ts"
import { Source } from "../source/KafkaSource.ts"

/**
 * Transient failures (a sink restarting, a dropped connection) are retried with capped, jittered
 * exponential backoff for as long as they last: while a batch waits, the source's bounded queue
 * fills and consumption pauses, and nothing is committed past it.
 */
const untilRecovered = Schedule.exponential("100 millis", 2).pipe(
  Schedule.union(Schedule.spaced("10 seconds")),
  Schedule.jittered
)

const retryTransient = <
  A,
  E extends { readonly classification: "transient" | "permanent"; readonly message: string },
  R
>(
  sink: string,
  effect: Effect.Effect<A, E, R>
) =>
  effect.pipe(
    Effect.tapError((error) =>
      Effect.logWarning(`${sink} write failed (${error.classification}): ${error.message}`).pipe(
        Effect.annotateLogs({ sink, classification: error.classification })
      )
    ),
    Effect.retry({ schedule: untilRecovered, while: (error) => error.classification === "transient" })
  )

/** The W3C `traceparent` of the current span, stored on outbox rows so the relay can link back to it. */
const currentTraceparent = Effect.map(
  Effect.option(Effect.currentSpan),
  (span) => span._tag === "Some" ? `00-${span.value.traceId}-${span.value.spanId}-01` : undefined
)

const batchAttributes = (batch: ReadonlyArray<KafkaRecord>, routed: Routed) => ({
  "messaging.system": "kafka",
  "messaging.operation.type": "process",
  "messaging.batch.message_count": batch.length,
  "sentinel.alerts": routed.alerts.length,
  "sentinel.dead_letters": routed.deadLetters.length,
  "messaging.destination.partition.ids": [...new Set(batch.map((r) => `${r.topic}/${r.partition}`))].join(",")
})

export const persistBatch = (batch: ReadonlyArray<KafkaRecord>) =>
  Effect.gen(function*() {
    const settings = yield* Settings
    const source = yield* Source
    const alerts = yield* AlertWriter
    const analytics = yield* AnalyticsWriter
    const routed = route(topicKinds(settings.kafka.topics), batch)
    yield* Effect.annotateCurrentSpan(batchAttributes(batch, routed))
    const traceparent = yield* currentTraceparent
    yield* Effect.all([
      retryTransient(
        "postgres",
        alerts.write({
          alerts: routed.alerts,
          audits: routed.audits,
          deadLetters: routed.deadLetters,
          ...(traceparent === undefined ? {} : { traceparent })
        })
      ),
      retryTransient(
        "clickhouse",
        analytics.write({ detections: routed.detections, transactions: routed.transactions, metrics: routed.metrics })
      )
    ], { concurrency: 2, discard: true })
    yield* source.commit(commitPoints(batch)).pipe(
      Effect.tapError((error) => Effect.logWarning(error.message)),
      Effect.retry(Schedule.exponential("100 millis").pipe(Schedule.compose(Schedule.recurs(5)))),
      // A commit refused after a rebalance leaves the records for the partition's new owner to redo,
      // idempotently; it is not a reason to stop.
      Effect.catchAll(() => Effect.void),
      Effect.withSpan("sentinel.commit")
    )
    return routed
  }).pipe(Effect.withSpan("sentinel.batch"))

/**
 * Runs until `stop` completes: then no new record is taken, the batch in flight is finished and
 * committed, and the effect returns.
 */
export const run = (stop: Deferred.Deferred<void>) =>
  Effect.gen(function*() {
    const settings = yield* Settings
    const source = yield* Source
    yield* batches(source.records.pipe(Stream.interruptWhen(Deferred.await(stop))), settings.batch).pipe(
      Stream.mapEffect(persistBatch),
      Stream.runDrain
    )
  })
