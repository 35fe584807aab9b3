/**
 * The source stage: a kafkajs consumer group over Sentinel's topics, whose records (with their Kafka
 * coordinates) the batcher takes a batch at a time, plus the offset commit the pipeline calls once a
 * batch is durable.
 *
 * Back-pressure: records wait in a bounded buffer (Handover.ts), at most `maxInFlight` of them. When
 * the sinks stall, the buffer fills, the kafkajs batch handler waits (heart-beating so the group
 * keeps us) and kafkajs stops fetching — memory stays bounded and Kafka keeps the backlog.
 *
 * Rebalances: kafkajs has no revoke callback; it waits for the running batch handler before it
 * rejoins. The handler stops handing over records as soon as its batch is stale (a hand-over still
 * waiting for room then is dropped, as is one whose handler failed), and a commit for
 * a partition we no longer own is skipped, so a revoked partition's in-flight records are either
 * written and committed, or written idempotently and left uncommitted for the new owner to redo.
 */
import { Data, Effect, Redacted, Schedule, type Scope } from "effect"
import { type Consumer, type IHeaders, Kafka, type KafkaMessage, logLevel, type SASLOptions } from "kafkajs"
import type { SentinelSettings } from "../config/Config.ts"
import { tlsOptions } from "../config/Tls.ts"
import { kafkaLogCreator } from "../telemetry/Logging.ts"
import * as Handover from "./Handover.ts"
import type { KafkaRecord } from "./KafkaRecord.ts"

export class KafkaError extends Data.TaggedError("KafkaError")<{
  readonly operation: string
  readonly cause: unknown
}> {
  override get message() {
    return `kafka ${this.operation} failed: ${this.cause instanceof Error ? this.cause.message : String(this.cause)}`
  }
}

export interface CommitPoint {
  readonly topic: string
  readonly partition: number
  /** The next offset to read: one past the last durable record. */
  readonly offset: string
}

export interface KafkaSource {
  /**
   * Up to `max` records, in the order Kafka delivered them, once `max` are waiting or the oldest has
   * waited `linger` ms; waits for a first record.
   */
  readonly take: (max: number, linger: number) => Effect.Effect<ReadonlyArray<KafkaRecord>>
  /** Up to `max` of the records waiting now. */
  readonly takeNow: (max: number) => ReadonlyArray<KafkaRecord>
  readonly commit: (points: ReadonlyArray<CommitPoint>) => Effect.Effect<void, KafkaError>
}

export type SourceConfig = SentinelSettings["kafka"]

/**
 * A kafkajs client with Sentinel's brokers, TLS and SASL. `forProbes`: a client whose failures are
 * answers (readiness), so it neither logs them nor retries for long.
 */
export const kafkaClient = (
  config: Pick<SourceConfig, "brokers" | "clientId"> & Partial<Pick<SourceConfig, "tls" | "sasl">>,
  forProbes = false
): Kafka =>
  new Kafka({
    clientId: config.clientId,
    brokers: [...config.brokers],
    ...(config.tls === undefined ? {} : { ssl: tlsOptions(config.tls, config.tls.rejectUnauthorized) }),
    ...(config.sasl === undefined ? {} : {
      // kafkajs types each mechanism's options apart; these three take the same ones.
      sasl: {
        mechanism: config.sasl.mechanism,
        username: config.sasl.username,
        password: Redacted.value(config.sasl.password)
      } as SASLOptions
    }),
    logLevel: forProbes ? logLevel.NOTHING : logLevel.WARN,
    logCreator: kafkaLogCreator,
    // Reconnect attempts at most 5 s apart, so a broker that comes back is found within seconds.
    retry: forProbes
      ? { initialRetryTime: 100, maxRetryTime: 1_000, retries: 1 }
      : { initialRetryTime: 250, maxRetryTime: 5_000, retries: 30 }
  })

export const topicList = (config: Pick<SourceConfig, "topics">): ReadonlyArray<string> => Object.values(config.topics)

/** kafkajs marks the errors a later attempt may not meet (a leader not elected yet, say) as retriable. */
const isRetriable = (error: KafkaError) =>
  typeof error.cause === "object" && error.cause !== null && "retriable" in error.cause &&
  error.cause.retriable === true

/**
 * Sentinel creates its topics (broker-side auto-creation is off); existing ones are left as they are.
 * A broker that has just started may not host a new topic's partitions yet: that is retried for a
 * while, past kafkajs's own retries.
 */
export const ensureTopics = (kafka: Kafka, topics: ReadonlyArray<string>, partitions: number) =>
  Effect.tryPromise({
    try: async () => {
      const admin = kafka.admin()
      await admin.connect()
      try {
        const existing = new Set(await admin.listTopics())
        const missing = topics.filter((topic) => !existing.has(topic))
        if (missing.length > 0) {
          await admin.createTopics({
            waitForLeaders: true,
            topics: missing.map((topic) => ({ topic, numPartitions: partitions }))
          })
        }
        return missing
      } finally {
        await admin.disconnect()
      }
    },
    catch: (cause) => new KafkaError({ operation: "create topics", cause })
  }).pipe(
    Effect.retry({
      while: isRetriable,
      schedule: Schedule.exponential("500 millis").pipe(Schedule.upTo("30 seconds"))
    })
  )

const headerValues = (headers: IHeaders | undefined): Record<string, string> => {
  const out: Record<string, string> = {}
  for (const [name, value] of Object.entries(headers ?? {})) {
    const last = Array.isArray(value) ? value[value.length - 1] : value
    if (last !== undefined) out[name] = last.toString()
  }
  return out
}

const toRecord = (topic: string, partition: number, message: KafkaMessage): KafkaRecord => ({
  topic,
  partition,
  offset: message.offset,
  timestamp: Number(message.timestamp),
  key: message.key === null ? null : message.key.toString(),
  headers: headerValues(message.headers),
  value: message.value
})

/** How long a batch handler waits for room in the buffer before it heart-beats again. */
const heartbeatEveryMs = 2_000
/** Records handed over at a time (at most), so a stale batch stops early. */
const handOverSlice = 500

export const make = (config: SourceConfig): Effect.Effect<KafkaSource, KafkaError, Scope.Scope> =>
  Effect.gen(function*() {
    const kafka = kafkaClient(config)
    const topics = topicList(config)
    yield* ensureTopics(kafka, topics, config.partitions)

    const sliceSize = Math.min(handOverSlice, config.maxInFlight)
    const handover = yield* Effect.acquireRelease(
      Effect.sync(() => Handover.make<KafkaRecord>(config.maxInFlight)),
      (handover) => Effect.sync(handover.close)
    )
    let assignment: ReadonlyArray<{ topic: string; partitions: ReadonlyArray<number> }> = []

    const consumer: Consumer = kafka.consumer({
      groupId: config.groupId,
      allowAutoTopicCreation: false,
      sessionTimeout: 30_000,
      heartbeatInterval: 3_000,
      maxWaitTimeInMs: 250
    })
    consumer.on(consumer.events.GROUP_JOIN, (event) => {
      assignment = Object.entries(event.payload.memberAssignment).map(([topic, partitions]) => ({ topic, partitions }))
    })

    yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: async () => {
          await consumer.connect()
          await consumer.subscribe({ topics: [...topics], fromBeginning: true })
          await consumer.run({
            autoCommit: false,
            eachBatchAutoResolve: false,
            partitionsConsumedConcurrently: 2,
            eachBatch: async ({ batch, heartbeat, isRunning, isStale, resolveOffset }) => {
              for (let i = 0; i < batch.messages.length; i += sliceSize) {
                if (!isRunning() || isStale()) return
                const slice = batch.messages.slice(i, i + sliceSize)
                let abandoned = false
                const handedOver = handover.offer(
                  slice.map((message) => toRecord(batch.topic, batch.partition, message)),
                  () => !abandoned && isRunning() && !isStale()
                )
                if (handedOver !== undefined) {
                  // The buffer is full: heart-beat while waiting, so the group keeps us.
                  let done = false
                  void handedOver.then(() => (done = true), () => (done = true))
                  try {
                    while (!done) {
                      await Promise.race([handedOver, new Promise((resolve) => setTimeout(resolve, heartbeatEveryMs))])
                      if (!done) await heartbeat()
                    }
                  } catch (error) {
                    // A failed heartbeat (a rebalance under way) ends this handler: its records stay out.
                    abandoned = true
                    throw error
                  }
                  if (!(await handedOver)) return
                }
                resolveOffset(slice[slice.length - 1]!.offset)
              }
            }
          })
        },
        catch: (cause) => new KafkaError({ operation: "connect", cause })
      }),
      () => Effect.promise(() => consumer.disconnect().catch(() => undefined))
    )

    const owned = (point: CommitPoint) =>
      assignment.some((a) => a.topic === point.topic && a.partitions.includes(point.partition))

    return {
      take: handover.take,
      takeNow: handover.takeNow,
      commit: (points) => {
        const mine = points.filter(owned)
        return mine.length === 0 ? Effect.void : Effect.tryPromise({
          try: () => consumer.commitOffsets([...mine]),
          catch: (cause) => new KafkaError({ operation: "commit", cause })
        })
      }
    }
  })
