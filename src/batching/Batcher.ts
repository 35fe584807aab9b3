/**
 * The batcher stage: batches of at most `maxRecords` taken from the source, closed early once the
 * oldest record has waited `maxWait`, so a quiet topic is still written promptly. A batch is the unit
 * of a Postgres transaction, a ClickHouse insert, an offset commit and a trace.
 *
 * The source gathers the records (src/source/Handover.ts); a batch costs one Effect, whatever its size.
 */
import { Duration, Effect, Option, Stream } from "effect"
import type { KafkaRecord } from "../source/KafkaRecord.ts"
import type { KafkaSource } from "../source/KafkaSource.ts"

export interface BatchConfig {
  readonly maxRecords: number
  readonly maxWait: Duration.Duration
}

/**
 * The source's records as batches until `stop` completes; then what is already waiting goes out as a
 * last batch (at most `maxRecords`), and the stream ends.
 */
export const batches = (
  source: Pick<KafkaSource, "take" | "takeNow">,
  config: BatchConfig,
  stop: Effect.Effect<void>
): Stream.Stream<ReadonlyArray<KafkaRecord>> => {
  const linger = Duration.toMillis(config.maxWait)
  // Failing with None ends `repeatEffectOption`'s stream.
  const untilStopped = Stream.repeatEffectOption(
    Effect.raceFirst(source.take(config.maxRecords, linger), Effect.zipRight(stop, Effect.fail(Option.none())))
  )
  const rest = Stream.suspend(() => {
    const last = source.takeNow(config.maxRecords)
    return last.length > 0 ? Stream.make(last) : Stream.empty
  })
  return Stream.concat(untilStopped, rest)
}

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
