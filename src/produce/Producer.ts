/**
 * Publishes a plan of detector output (src/produce/DetectorOutput.ts) to Sentinel's topics, at full
 * speed or at a steady rate: what `sentinel produce` runs for the tests, the demo and the benchmark.
 */
import {
  ATTR_MESSAGING_BATCH_MESSAGE_COUNT,
  ATTR_MESSAGING_DESTINATION_NAME,
  ATTR_MESSAGING_OPERATION_NAME,
  ATTR_MESSAGING_OPERATION_TYPE,
  ATTR_MESSAGING_SYSTEM_NAME,
  MESSAGING_OPERATION_TYPE_VALUE_SEND,
  MESSAGING_SYSTEM_NAME_VALUE_KAFKA
} from "@opentelemetry/semantic-conventions/incubating"
import { Effect, Runtime } from "effect"
import { CompressionTypes, type Kafka, type Message, Partitioners, type TopicMessages } from "kafkajs"
import type { SentinelSettings } from "../config/Config.ts"
import type { TopicKind } from "../contract/Decode.ts"
import { ensureTopics, kafkaClient, KafkaError, topicList } from "../source/KafkaSource.ts"
import { formatTraceparent } from "../telemetry/TraceContext.ts"
import { type Expected, plan, type PlannedMessage, type PlanOptions, type PlanTally, tally } from "./DetectorOutput.ts"

export interface PublishOptions {
  /** Records per second; unlimited when undefined. */
  readonly rate?: number | undefined
  /** Called after each send with the number of records published so far. */
  readonly onProgress?: (sent: number) => void
}

export interface ProduceOptions extends PlanOptions, PublishOptions {}

const sendSize = 1000

/**
 * Idempotent: a send retried across a broker restart is written once, as the detector should do.
 * The Java client's partitioner (murmur2): keys land where the detector's own producer puts them.
 */
export const idempotentProducer = (client: Kafka) =>
  client.producer({
    allowAutoTopicCreation: false,
    idempotent: true,
    maxInFlightRequests: 1,
    createPartitioner: Partitioners.DefaultPartitioner
  })

/**
 * One send as a `sentinel.produce` span, a trace of its own, as the detector's producer makes one: the
 * planned records that carry a `traceparent` carry this span's instead, so the consumer's batch
 * spans link to a span that exists.
 */
const tracedSend = (topicMessages: ReadonlyArray<TopicMessages>, send: () => Promise<unknown>) => {
  const count = topicMessages.reduce((sum, { messages }) => sum + messages.length, 0)
  return Effect.useSpan("sentinel.produce", {
    root: true,
    kind: "producer",
    attributes: {
      [ATTR_MESSAGING_SYSTEM_NAME]: MESSAGING_SYSTEM_NAME_VALUE_KAFKA,
      [ATTR_MESSAGING_OPERATION_TYPE]: MESSAGING_OPERATION_TYPE_VALUE_SEND,
      [ATTR_MESSAGING_OPERATION_NAME]: "send",
      [ATTR_MESSAGING_BATCH_MESSAGE_COUNT]: count,
      ...(topicMessages.length === 1 ? { [ATTR_MESSAGING_DESTINATION_NAME]: topicMessages[0]!.topic } : {})
    }
  }, (span) => {
    const traceparent = formatTraceparent(span)
    for (const { messages } of topicMessages) {
      for (const { headers } of messages) if (headers?.traceparent !== undefined) headers.traceparent = traceparent
    }
    return Effect.promise(send)
  })
}

/** Generates the plan while it publishes it. */
export const produce = (
  kafka: SentinelSettings["kafka"],
  options: ProduceOptions
): Effect.Effect<PlanTally, KafkaError> => publish(kafka, plan(options), options)

/**
 * Publishes planned messages, generated beforehand or lazily. The benchmark generates its fixed-rate
 * records beforehand, so that its producer takes no more of the machine than sending does.
 */
export const publish = (
  kafka: SentinelSettings["kafka"],
  messages: Iterable<PlannedMessage>,
  options: PublishOptions
): Effect.Effect<PlanTally, KafkaError> =>
  Effect.gen(function*() {
    const client = kafkaClient(kafka)
    yield* ensureTopics(client, topicList(kafka), kafka.partitions)
    const topicOf: Record<TopicKind, string> = {
      detection: kafka.topics.detections,
      metric: kafka.topics.metrics,
      transaction: kafka.topics.transactions,
      audit: kafka.topics.audits
    }
    const runtime = yield* Effect.runtime<never>()
    return yield* Effect.tryPromise({
      try: async () => {
        const producer = idempotentProducer(client)
        await producer.connect()
        try {
          const planned: Array<{ readonly expected: Expected }> = []
          const pending = new Map<string, Array<Message>>()
          let sent = 0
          let queued = 0
          const started = Date.now()
          const flush = async () => {
            const topicMessages = [...pending].map(([topic, messages]) => ({ topic, messages }))
            await Runtime.runPromise(runtime)(tracedSend(topicMessages, () =>
              producer.sendBatch({ acks: -1, compression: CompressionTypes.None, topicMessages })))
            sent += queued
            queued = 0
            pending.clear()
            options.onProgress?.(sent)
            if (options.rate !== undefined) {
              const due = started + (sent / options.rate) * 1000
              const wait = due - Date.now()
              if (wait > 0) {
                await new Promise((resolve) =>
                  setTimeout(resolve, wait)
                )
              }
            }
          }
          // At a fixed rate, send small bursts so the records' timestamps are spread evenly.
          const burst = options.rate === undefined
            ? sendSize
            : Math.max(1, Math.min(sendSize, Math.round(options.rate / 20)))
          for (const message of messages) {
            planned.push({ expected: message.expected })
            const topic = topicOf[message.topic]
            const list = pending.get(topic) ?? []
            list.push({ key: message.key, value: message.value, headers: { ...message.headers } })
            pending.set(topic, list)
            if (++queued >= burst) await flush()
          }
          if (queued > 0) await flush()
          return tally(planned)
        } finally {
          await producer.disconnect()
        }
      },
      catch: (cause) => new KafkaError({ operation: "produce", cause })
    })
  })
