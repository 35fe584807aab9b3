/**
 * The batcher stage: groups the source's slices of records into batches of at most `maxRecords`,
 * closed early after `maxWait` so a quiet topic is still written promptly. A batch is the unit of a
 * Postgres transaction, a ClickHouse insert, an offset commit and a trace.
 *
 * It works on slices, not records: Effect streams cost a few microseconds per element, which per
 * record was a measurable share of the daemon's CPU (scripts/bench.ts `--profile`). A slice that does
 * not fit is halved until its head fills the batch; the rest starts the next one.
 */
import { Chunk, type Duration, Schedule, Sink, Stream } from "effect"
import type { KafkaRecord } from "../source/KafkaRecord.ts"

export interface BatchConfig {
  readonly maxRecords: number
  readonly maxWait: Duration.Duration
}

type Slice = ReadonlyArray<KafkaRecord>

const halves = (slice: Slice): Chunk.Chunk<Slice> => {
  if (slice.length <= 1) return Chunk.of(slice)
  const middle = Math.ceil(slice.length / 2)
  return Chunk.make(slice.slice(0, middle), slice.slice(middle))
}

export const batches = <E, R>(
  slices: Stream.Stream<Slice, E, R>,
  config: BatchConfig
): Stream.Stream<Slice, E, R> =>
  slices.pipe(
    Stream.aggregateWithin(
      Sink.foldWeightedDecompose({
        initial: [] as ReadonlyArray<Slice>,
        maxCost: config.maxRecords,
        cost: (_, slice: Slice) => slice.length,
        decompose: halves,
        body: (gathered, slice) => [...gathered, slice]
      }),
      Schedule.spaced(config.maxWait)
    ),
    Stream.map((gathered) => gathered.flat()),
    Stream.filter((batch) => batch.length > 0)
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
