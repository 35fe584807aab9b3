import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import * as Handover from "../../src/source/Handover.ts"

describe("Handover", () => {
  const items = (count: number) => Array.from({ length: count }, (_, i) => i)

  it("holds at most its capacity: a hand-over that does not fit waits until takes make room", async () => {
    const handover = Handover.make<number>(10)
    expect(handover.offer(items(10))).toBeUndefined()
    let admitted = false
    void handover.offer(items(5))!.then(() => (admitted = true))
    expect(handover.takeNow(4)).toHaveLength(4)
    await Promise.resolve()
    expect(admitted).toBe(false) // 6 waiting + 5 > 10
    expect(handover.takeNow(1)).toHaveLength(1)
    await Promise.resolve()
    expect(admitted).toBe(true)
    expect(handover.takeNow(100)).toHaveLength(10)
  })

  it("gives a take what waits once the oldest has lingered, or at once when enough wait", async () => {
    const handover = Handover.make<number>(100)
    handover.offer(items(3))
    const started = Date.now()
    expect(await Effect.runPromise(handover.take(10, 50))).toEqual([0, 1, 2])
    expect(Date.now() - started).toBeGreaterThanOrEqual(40)
    handover.offer(items(12))
    expect(await Effect.runPromise(handover.take(10, 60_000))).toEqual(items(10))
  })

  it("wakes a waiting take when records arrive", async () => {
    const handover = Handover.make<number>(100)
    setTimeout(() => handover.offer(items(5)), 20)
    expect(await Effect.runPromise(handover.take(5, 60_000))).toEqual(items(5))
  })

  it("lets a hand-over larger than the capacity in once the buffer is empty", async () => {
    const handover = Handover.make<number>(2)
    handover.offer(items(1))
    const waiting = handover.offer(items(3))!
    expect(handover.takeNow(1)).toEqual([0])
    await waiting
    expect(handover.takeNow(10)).toEqual([0, 1, 2])
  })

  it("drops a waiting hand-over that is no longer wanted when its turn comes", async () => {
    const handover = Handover.make<number>(2)
    handover.offer([1, 2])
    let wanted = true
    const stale = handover.offer([3, 4], () => wanted)!
    const fresh = handover.offer([5, 6])!
    wanted = false // its Kafka batch went stale while it waited
    expect(handover.takeNow(10)).toEqual([1, 2])
    expect(await stale).toBe(false)
    expect(await fresh).toBe(true)
    expect(handover.takeNow(10)).toEqual([5, 6])
  })

  it("refuses waiting and later hand-overs once closed", async () => {
    const handover = Handover.make<number>(1)
    handover.offer(items(1))
    const waiting = handover.offer(items(1))!
    handover.close()
    await expect(waiting).rejects.toBeInstanceOf(Handover.HandoverClosed)
    await expect(handover.offer(items(1))).rejects.toBeInstanceOf(Handover.HandoverClosed)
  })

  it("an interrupted take takes nothing", async () => {
    const handover = Handover.make<number>(100)
    handover.offer(items(3))
    const taken = await Effect.runPromise(Effect.timeout(handover.take(10, 60_000), "20 millis").pipe(Effect.option))
    expect(taken._tag).toBe("None")
    expect(handover.takeNow(10)).toEqual([0, 1, 2])
  })
})
