import { Chunk, Duration, Effect, Stream } from "effect"
import { describe, expect, it } from "vitest"
import { batches, commitPoints } from "../../src/batching/Batcher.ts"
import * as Handover from "../../src/source/Handover.ts"
import type { KafkaRecord } from "../../src/source/KafkaRecord.ts"

const record = (topic: string, partition: number, offset: string): KafkaRecord => ({
  topic,
  partition,
  offset,
  timestamp: 0,
  key: null,
  headers: {},
  value: null
})

describe("Batcher", () => {
  it("commits one past the highest offset of each partition in a batch", () => {
    const points = commitPoints([
      record("a", 0, "5"),
      record("a", 1, "9"),
      record("a", 0, "7"),
      record("b", 0, "3"),
      record("a", 0, "6")
    ])
    expect(points).toEqual([
      { topic: "a", partition: 0, offset: "8" },
      { topic: "a", partition: 1, offset: "10" },
      { topic: "b", partition: 0, offset: "4" }
    ])
  })

  it("keeps 64-bit offsets exact", () => {
    expect(commitPoints([record("a", 0, "9007199254740993")])).toEqual([
      { topic: "a", partition: 0, offset: "9007199254740994" }
    ])
  })

  const records = (count: number, from = 0) => Array.from({ length: count }, (_, i) => record("a", 0, String(from + i)))

  /** Batches of the slices handed over, until `count` batches came. */
  const batchesOf = (slices: ReadonlyArray<ReadonlyArray<KafkaRecord>>, maxRecords: number, count: number) => {
    const handover = Handover.make<KafkaRecord>(10_000)
    for (const slice of slices) handover.offer(slice)
    return Effect.runPromise(
      batches(handover, { maxRecords, maxWait: Duration.millis(50) }, Effect.never).pipe(
        Stream.take(count),
        Stream.runCollect,
        Effect.map(Chunk.toReadonlyArray)
      )
    )
  }

  it("closes a batch at its size limit, or once its oldest record has waited maxWait", async () => {
    const started = Date.now()
    const single = await batchesOf(records(25).map((one) => [one]), 10, 3)
    expect(single.map((batch) => batch.length)).toEqual([10, 10, 5])
    expect(Date.now() - started).toBeGreaterThanOrEqual(40)
  })

  it("fills batches exactly from slices of any size, keeping the records in order", async () => {
    const slices = [records(7), records(500, 7), records(3, 507), records(90, 510)]
    const gathered = await batchesOf(slices, 100, 6)
    expect(gathered.map((batch) => batch.length)).toEqual([100, 100, 100, 100, 100, 100])
    expect(gathered.flat().map((r) => r.offset)).toEqual(records(600).map((r) => r.offset))
  })

  it("on stop, sends what is waiting as a last batch and ends", async () => {
    const handover = Handover.make<KafkaRecord>(100)
    handover.offer(records(3))
    const gathered = await Effect.runPromise(
      batches(handover, { maxRecords: 10, maxWait: Duration.hours(1) }, Effect.sleep("20 millis")).pipe(
        Stream.runCollect,
        Effect.map(Chunk.toReadonlyArray)
      )
    )
    expect(gathered.map((batch) => batch.length)).toEqual([3])
  })
})
