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

  it("closes a batch at its size limit, and flushes the remainder when the stream ends", async () => {
    const records = Array.from({ length: 25 }, (_, i) => record("a", 0, String(i)))
    const sizes = await Effect.runPromise(
      batches(Stream.fromIterable(records), { maxRecords: 10, maxWait: Duration.seconds(1) }).pipe(
        Stream.map((batch) => batch.length),
        Stream.runCollect,
        Effect.map(Chunk.toReadonlyArray)
      )
    )
    expect(sizes).toEqual([10, 10, 5])
  })
})
