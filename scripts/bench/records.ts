/**
 * The produced records once more, for the store ceilings: the plan is deterministic, so the same
 * options give the same keys and values, and the producer's partitioner and its in-order, idempotent
 * sends give the same Kafka coordinates (timestamps and trace headers differ). Batched as the pipeline
 * batches, and written with only the writes timed.
 */
import { Partitioners } from "kafkajs"
import type { Topics } from "../../src/config/Config.ts"
import type { TopicKind } from "../../src/contract/Decode.ts"
import { plan, type PlanOptions } from "../../src/produce/DetectorOutput.ts"
import type { KafkaRecord } from "../../src/source/KafkaRecord.ts"

/** What was produced and where: enough to make the same records again (in JSON, for a child process). */
export interface Dataset {
  readonly count: number
  readonly seed: number
  readonly alertShare: number
  /** ISO-8601: when the first transaction happened. */
  readonly start: string
  readonly topics: Topics
  readonly partitions: number
}

/** The benchmark's records: contract-shaped, none malformed, none re-sent. */
export const planOptions = (data: Dataset): PlanOptions => ({
  count: data.count,
  seed: data.seed,
  alertShare: data.alertShare,
  malformedShare: 0,
  duplicateShare: 0,
  start: new Date(data.start)
})

/** The dataset's records in production order, `batchSize` at a time. */
export function* recordBatches(data: Dataset, batchSize: number): Generator<ReadonlyArray<KafkaRecord>> {
  const partitionOf = Partitioners.DefaultPartitioner()
  const partitionMetadata = Array.from({ length: data.partitions }, (_, partitionId) => ({
    partitionId,
    partitionErrorCode: 0,
    leader: 0,
    replicas: [0],
    isr: [0]
  }))
  const topicOf: Record<TopicKind, string> = {
    detection: data.topics.detections,
    metric: data.topics.metrics,
    transaction: data.topics.transactions,
    audit: data.topics.audits
  }
  const nextOffsets = new Map<string, number>()
  const timestamp = Date.now()
  let batch: Array<KafkaRecord> = []
  for (const message of plan(planOptions(data))) {
    const topic = topicOf[message.topic]
    const partition = partitionOf({ topic, partitionMetadata, message: { key: message.key, value: message.value } })
    const coordinate = `${topic}/${partition}`
    const offset = nextOffsets.get(coordinate) ?? 0
    nextOffsets.set(coordinate, offset + 1)
    batch.push({
      topic,
      partition,
      offset: String(offset),
      timestamp,
      key: message.key,
      headers: message.headers,
      value: message.value
    })
    if (batch.length === batchSize) {
      yield batch
      batch = []
    }
  }
  if (batch.length > 0) yield batch
}

/** Records prepared (generated and decoded) ahead of each timed stretch of writes: bounds memory. */
export const recordsPerChunk = 40_000

/**
 * Writes every prepared batch in order, one at a time as the pipeline does, and returns the seconds
 * spent writing, and this process's CPU seconds meanwhile (an in-process engine's threads included).
 * Batches are prepared a chunk at a time between timed stretches, so neither the generation nor the
 * decoding is counted.
 */
export const timeWrites = async <B>(
  prepared: AsyncIterable<B> | Iterable<B>,
  batchesPerChunk: number,
  write: (batch: B) => Promise<void>
): Promise<{ readonly seconds: number; readonly cpuSeconds: number }> => {
  let seconds = 0
  let cpuSeconds = 0
  let chunk: Array<B> = []
  const flush = async () => {
    const started = performance.now()
    const cpu = process.cpuUsage()
    for (const batch of chunk) await write(batch)
    const used = process.cpuUsage(cpu)
    seconds += (performance.now() - started) / 1000
    cpuSeconds += (used.user + used.system) / 1e6
    chunk = []
  }
  for await (const batch of prepared) {
    chunk.push(batch)
    if (chunk.length >= batchesPerChunk) await flush()
  }
  await flush()
  return { seconds, cpuSeconds }
}
