/**
 * The batcher stage: groups the record stream into batches of at most `maxRecords`, closed early
 * after `maxWait` so a quiet topic is still written promptly. A batch is the unit of a Postgres
 * transaction, a ClickHouse insert, an offset commit and a trace.
 */
import { Chunk, type Duration, Stream } from "effect"
import type { KafkaRecord } from "../source/KafkaRecord.ts"

export interface BatchConfig {
  readonly maxRecords: number
  readonly maxWait: Duration.Duration
}

export const batches = <E, R>(
  records: Stream.Stream<KafkaRecord, E, R>,
  config: BatchConfig
): Stream.Stream<ReadonlyArray<KafkaRecord>, E, R> =>
  records.pipe(
    Stream.groupedWithin(config.maxRecords, config.maxWait),
    Stream.map((chunk) => Chunk.toReadonlyArray(chunk))
  )

/**
 * Where the committed offset of each partition may move once a batch is durable: one past its
 * highest offset. Batches are written one after the other in stream order, so every record of a
 * partition below that point is already durable — the contiguous prefix the commit may cover.
 */
export const commitPoints = (
  batch: ReadonlyArray<KafkaRecord>
): Array<{ topic: string; partition: number; offset: string }> => {
  const highest = new Map<string, { topic: string; partition: number; offset: bigint }>()
  for (const record of batch) {
    const key = `${record.topic}\u0000${record.partition}`
    const offset = BigInt(record.offset)
    const seen = highest.get(key)
    if (seen === undefined || offset > seen.offset) {
      highest.set(key, { topic: record.topic, partition: record.partition, offset })
    }
  }
  return [...highest.values()].map(({ offset, partition, topic }) => ({
    topic,
    partition,
    offset: String(offset + 1n)
  }))
}
