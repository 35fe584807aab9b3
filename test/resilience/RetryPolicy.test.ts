import { describe, expect, it } from "@effect/vitest"
import { Clock, Data, Effect, Fiber, HashMap, Logger, Metric, Option, Random, Ref, TestClock } from "effect"
import * as CircuitBreaker from "../../src/resilience/CircuitBreaker.ts"
import { retriesTotal, type RetryPolicy, retryTransient } from "../../src/resilience/RetryPolicy.ts"

class Transient extends Data.TaggedError("Transient")<{ readonly message: string }> {}
class Permanent extends Data.TaggedError("Permanent")<{ readonly message: string }> {}

const transient = new Transient({ message: "connection reset" })
const isTransient = (error: Transient | Permanent) => error._tag === "Transient"

const policy: RetryPolicy = { initialDelay: "100 millis", maxDelay: "1 second", maxElapsed: "5 seconds", factor: 2 }

/** A sink call that fails with `error` on its first `failures` attempts; `attempts` tells when each ran. */
const flaky = <E>(failures: number, error: E) =>
  Effect.gen(function*() {
    const attempts = yield* Ref.make<ReadonlyArray<number>>([])
    const call = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const earlier = yield* Ref.getAndUpdate(attempts, (all) => [...all, now])
      return earlier.length < failures ? yield* Effect.fail(error) : "written"
    })
    return { call, attempts: Ref.get(attempts) }
  })

const gaps = (times: ReadonlyArray<number>) => times.slice(1).map((time, i) => time - times[i]!)

/** Runs `effect` while an hour of TestClock time passes, long enough for any retrying here. */
const run = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.gen(function*() {
    const fiber = yield* Effect.fork(Effect.either(effect))
    yield* TestClock.adjust("1 hour")
    return yield* Fiber.join(fiber)
  })

/** Jitter at the top of its range: each delay is its bound. */
const noJitter = Effect.withRandom(Random.fixed([1]))

const retries = (sink: string) =>
  Metric.value(Metric.tagged(retriesTotal, "sink", sink)).pipe(Effect.map((c) => c.count))

describe("RetryPolicy", () => {
  it.effect("retries transient failures until the call succeeds, counting each retry", () =>
    Effect.gen(function*() {
      const sink = yield* flaky(3, transient)
      const result = yield* run(sink.call.pipe(retryTransient("retry-success", isTransient, policy)))
      expect(result).toMatchObject({ _tag: "Right", right: "written" })
      const times = yield* sink.attempts
      expect(times).toHaveLength(4)
      // Equal jitter: the n-th delay lies in [½·d, d] for d = 100 ms · 2ⁿ.
      gaps(times).forEach((gap, n) => {
        expect(gap).toBeGreaterThanOrEqual(50 * 2 ** n)
        expect(gap).toBeLessThanOrEqual(100 * 2 ** n)
      })
      expect(yield* retries("retry-success")).toBe(3)
    }))

  it.effect("returns an error that is not transient at once", () =>
    Effect.gen(function*() {
      const sink = yield* flaky(1, new Permanent({ message: "value out of range" }))
      const error = yield* Effect.flip(sink.call.pipe(retryTransient("retry-permanent", isTransient, policy)))
      expect(error._tag).toBe("Permanent")
      expect(yield* sink.attempts).toHaveLength(1)
      expect(yield* retries("retry-permanent")).toBe(0)
    }))

  it.effect("caps each delay at maxDelay", () =>
    Effect.gen(function*() {
      const sink = yield* flaky(8, transient)
      yield* run(sink.call.pipe(retryTransient("retry-cap", isTransient, { ...policy, maxElapsed: "1 minute" })))
        .pipe(noJitter)
      expect(gaps(yield* sink.attempts)).toEqual([100, 200, 400, 800, 1000, 1000, 1000, 1000])
    }))

  it.effect("keeps jittering at the cap", () =>
    Effect.gen(function*() {
      const sink = yield* flaky(20, transient)
      yield* run(sink.call.pipe(retryTransient("retry-cap-jitter", isTransient, { ...policy, maxElapsed: "1 minute" })))
      const capped = gaps(yield* sink.attempts).slice(4)
      expect(capped.every((gap) => gap >= 500 && gap <= 1000)).toBe(true)
      expect(new Set(capped).size).toBeGreaterThan(1)
    }))

  it.effect("gives up maxElapsed after the first failure, with the last error", () =>
    Effect.gen(function*() {
      const sink = yield* flaky(Infinity, transient)
      const result = yield* run(sink.call.pipe(retryTransient("retry-bound", isTransient, policy))).pipe(noJitter)
      expect(result).toMatchObject({ _tag: "Left", left: { _tag: "Transient" } })
      // 100 + 200 + 400 + 800 + 1000 + 1000 ms, then the rest of the 5 s: the last retry starts at the bound.
      expect(yield* sink.attempts).toEqual([0, 100, 300, 700, 1500, 2500, 3500, 4500, 5000])
      expect(yield* retries("retry-bound")).toBe(8)
    }))

  it.effect("logs each retry with the sink, the attempt, the delay and the error", () =>
    Effect.gen(function*() {
      const lines: Array<{ readonly message: unknown; readonly annotations: Record<string, unknown> }> = []
      const capture = Logger.make(({ annotations, message }) => {
        lines.push({ message, annotations: Object.fromEntries(HashMap.toEntries(annotations)) })
      })
      const sink = yield* flaky(2, transient)
      yield* run(sink.call.pipe(retryTransient("postgres", isTransient, policy))).pipe(
        noJitter,
        Effect.provide(Logger.replace(Logger.defaultLogger, capture))
      )
      expect(lines).toEqual([
        {
          message: ["postgres call failed, retry 1 in 100ms: connection reset"],
          annotations: { sink: "postgres", attempt: 1, delayMillis: 100 }
        },
        {
          message: ["postgres call failed, retry 2 in 200ms: connection reset"],
          annotations: { sink: "postgres", attempt: 2, delayMillis: 200 }
        }
      ])
    }))

  it.scoped("waits for an open circuit breaker to half-open instead of calling it", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make("retry-breaker", {
        windowSize: 2,
        minimumCalls: 2,
        failureRateThreshold: 0.5,
        slowCallRateThreshold: 1,
        slowCallDuration: "10 seconds",
        openDuration: "3 seconds",
        maxOpenDuration: "1 minute",
        halfOpenMaxProbes: 1,
        halfOpenSuccessesToClose: 1,
        isFailure: (error) => error instanceof Transient
      })
      const sink = yield* flaky(2, transient)
      const result = yield* run(
        sink.call.pipe(
          breaker.protect,
          retryTransient("retry-breaker", isTransient, { ...policy, maxElapsed: "1 minute" })
        )
      ).pipe(noJitter)
      expect(result).toMatchObject({ _tag: "Right", right: "written" })
      // Opened by the second failure at 100 ms; the retry at 300 ms met the open breaker and slept until it
      // half-opened at 3.1 s, where the probe succeeded.
      expect(yield* sink.attempts).toEqual([0, 100, 3100])
      expect(yield* retries("retry-breaker")).toBe(3)
      expect(yield* breaker.state).toBe("closed")
    }))

  it.scoped("waits past maxElapsed while an operator holds the breaker open, and goes on once it is reset", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make("retry-forced", {
        windowSize: 1,
        minimumCalls: 1,
        failureRateThreshold: 1,
        slowCallRateThreshold: 1,
        slowCallDuration: "10 seconds",
        openDuration: "1 second",
        maxOpenDuration: "1 minute",
        halfOpenMaxProbes: 1,
        halfOpenSuccessesToClose: 1,
        isFailure: () => true
      })
      yield* breaker.forceOpen
      const sink = yield* flaky(0, transient)
      const fiber = yield* Effect.fork(
        sink.call.pipe(breaker.protect, retryTransient("retry-forced", isTransient, policy))
      )
      // Far past the policy's 5 s bound: a forced-open breaker is maintenance, not a failure.
      yield* TestClock.adjust("5 minutes")
      expect(yield* Fiber.poll(fiber)).toEqual(Option.none())
      expect(yield* sink.attempts).toEqual([])
      yield* breaker.reset
      // The next retry comes within the policy's largest delay.
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.join(fiber)).toBe("written")
      expect(yield* sink.attempts).toHaveLength(1)
    }))
})
