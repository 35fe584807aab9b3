import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Exit, Fiber, Metric, Ref, TestClock } from "effect"
import { fiberRestarts, supervised } from "../../src/resilience/Supervisor.ts"

const config = { maxRestarts: 3, window: Duration.seconds(60), backoff: Duration.seconds(1) }

/** An effect that dies the first `failures` times it runs, then succeeds with the number of runs. */
const flaky = (failures: number, runs: Ref.Ref<number>) =>
  Ref.updateAndGet(runs, (n) => n + 1).pipe(
    Effect.flatMap((n) => (n <= failures ? Effect.die(new Error(`crash ${n}`)) : Effect.succeed(n)))
  )

describe("supervised", () => {
  it.effect("restarts a fiber that dies, with a doubling backoff, and counts each restart", () =>
    Effect.gen(function*() {
      const runs = yield* Ref.make(0)
      const name = `flaky-${Math.random()}`
      const fiber = yield* Effect.fork(supervised(name, config, flaky(2, runs)))
      yield* TestClock.adjust(Duration.millis(999))
      expect(yield* Ref.get(runs)).toBe(1)
      yield* TestClock.adjust(Duration.millis(1))
      expect(yield* Ref.get(runs)).toBe(2)
      // The second restart waits twice as long.
      yield* TestClock.adjust(Duration.millis(1999))
      expect(yield* Ref.get(runs)).toBe(2)
      yield* TestClock.adjust(Duration.millis(1))
      expect(yield* Fiber.join(fiber)).toBe(3)
      const restarts = yield* Metric.value(Metric.tagged(fiberRestarts, "fiber", name))
      expect(restarts.count).toBe(2)
    }))

  it.effect("gives up on a crash loop and returns the defect", () =>
    Effect.gen(function*() {
      const runs = yield* Ref.make(0)
      const fiber = yield* Effect.fork(supervised("looping", config, flaky(100, runs)))
      yield* TestClock.adjust(Duration.minutes(1))
      const exit = yield* Fiber.await(fiber)
      expect(Exit.isFailure(exit)).toBe(true)
      expect(yield* Ref.get(runs)).toBe(config.maxRestarts + 1)
    }))

  it.effect("forgets old crashes after a healthy run", () =>
    Effect.gen(function*() {
      const runs = yield* Ref.make(0)
      // Each run lasts two minutes, longer than the window, then dies: never a crash loop.
      const longRuns = Effect.zipRight(Effect.sleep(Duration.minutes(2)), flaky(5, runs))
      const fiber = yield* Effect.fork(supervised("slow-crasher", config, longRuns))
      for (let i = 0; i < 6; i++) yield* TestClock.adjust(Duration.minutes(3))
      expect(yield* Fiber.join(fiber)).toBe(6)
    }))

  it.effect("does not restart a fiber that was interrupted", () =>
    Effect.gen(function*() {
      const runs = yield* Ref.make(0)
      const fiber = yield* Effect.fork(
        supervised("stopped", config, Effect.zipRight(Ref.update(runs, (n) => n + 1), Effect.never))
      )
      yield* TestClock.adjust(Duration.millis(10))
      yield* Fiber.interrupt(fiber)
      yield* TestClock.adjust(Duration.minutes(1))
      expect(yield* Ref.get(runs)).toBe(1)
    }))
})
