import { Chunk, Duration, Effect, Stream } from "effect"
import { describe, expect, it } from "vitest"
import { batches, commitPoints } from "../../src/batching/Batcher.ts"
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

  const batchesOf = (slices: ReadonlyArray<ReadonlyArray<KafkaRecord>>, maxRecords: number) =>
    Effect.runPromise(
      batches(Stream.fromIterable(slices), { maxRecords, maxWait: Duration.seconds(1) }).pipe(
        Stream.runCollect,
        Effect.map(Chunk.toReadonlyArray)
      )
    )

  const records = (count: number, from = 0) => Array.from({ length: count }, (_, i) => record("a", 0, String(from + i)))

  it("closes a batch at its size limit, and flushes the remainder when the stream ends", async () => {
    const single = await batchesOf(records(25).map((one) => [one]), 10)
    expect(single.map((batch) => batch.length)).toEqual([10, 10, 5])
  })

  it("splits slices to fill batches exactly, keeping the records in order", async () => {
    const slices = [records(7), records(500, 7), records(3, 507), records(90, 510)]
    const gathered = await batchesOf(slices, 100)
    expect(gathered.map((batch) => batch.length)).toEqual([100, 100, 100, 100, 100, 100])
    expect(gathered.flat().map((r) => r.offset)).toEqual(records(600).map((r) => r.offset))
  })
})
