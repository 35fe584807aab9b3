import { describe, expect, it } from "@effect/vitest"
import { Clock, Data, Deferred, Effect, Either, Fiber, FiberStatus, Metric, Ref, Stream, TestClock } from "effect"
import { vi } from "vitest"
import * as CircuitBreaker from "../../src/resilience/CircuitBreaker.ts"

class SinkDown extends Data.TaggedError("SinkDown")<{ readonly message: string }> {}
class BadRecord extends Data.TaggedError("BadRecord")<{ readonly message: string }> {}

const sinkDown = Effect.fail(new SinkDown({ message: "connection refused" }))
const badRecord = Effect.fail(new BadRecord({ message: "value out of range" }))
const slow = TestClock.adjust("2 seconds")

const config: CircuitBreaker.CircuitBreakerConfig = {
  windowSize: 4,
  minimumCalls: 4,
  failureRateThreshold: 0.5,
  slowCallRateThreshold: 0.5,
  slowCallDuration: "1 second",
  openDuration: "1 second",
  maxOpenDuration: "4 seconds",
  halfOpenMaxProbes: 2,
  halfOpenSuccessesToClose: 2,
  isFailure: (error) => error instanceof SinkDown
}

// Metrics are global: every test names its own breaker.
const make = (name: string, overrides: Partial<CircuitBreaker.CircuitBreakerConfig> = {}) =>
  CircuitBreaker.make(name, { ...config, ...overrides })

const call = <A, E>(breaker: CircuitBreaker.CircuitBreaker, effect: Effect.Effect<A, E>) =>
  Effect.either(breaker.protect(effect))

const times = <A, E>(n: number, effect: Effect.Effect<A, E>) => Effect.replicateEffect(effect, n, { discard: true })

/** Four counted failures: a full window at failure rate 1. */
const trip = (breaker: CircuitBreaker.CircuitBreaker) => times(4, call(breaker, sinkDown))

/** The error a call gets while the breaker refuses it. */
const refusal = (breaker: CircuitBreaker.CircuitBreaker) => Effect.flip(breaker.protect(Effect.void))

/** How long the breaker stays open from now, read from the `retryAt` it gives callers. */
const openFor = (breaker: CircuitBreaker.CircuitBreaker) =>
  Effect.gen(function*() {
    const error = yield* refusal(breaker)
    const now = yield* Clock.currentTimeMillis
    return error.retryAt === undefined ? undefined : error.retryAt - now
  })

const gauge = (name: string) => Metric.value(Metric.tagged(CircuitBreaker.stateGauge, "breaker", name))

/** Yields to other fibers until `condition` holds; dies if it never does. */
const eventually = (condition: Effect.Effect<boolean>, yields = 100): Effect.Effect<void> =>
  Effect.flatMap(condition, (holds) =>
    holds
      ? Effect.void
      : yields === 0
      ? Effect.dieMessage("condition never held")
      : Effect.zipRight(Effect.yieldNow(), eventually(condition, yields - 1)))

/** Subscribes to the breaker's changes; the returned function waits for the first `n` and gives them. */
const record = (breaker: CircuitBreaker.CircuitBreaker) =>
  Effect.gen(function*() {
    const seen = yield* Ref.make<ReadonlyArray<CircuitBreaker.StateChange>>([])
    const subscriber = yield* breaker.changes.pipe(
      Stream.runForEach((change) => Ref.update(seen, (changes) => [...changes, change])),
      Effect.forkScoped
    )
    // Suspended: subscribed, and waiting for the first change.
    yield* eventually(Effect.map(Fiber.status(subscriber), FiberStatus.isSuspended))
    return (n: number) =>
      eventually(Effect.map(Ref.get(seen), (changes) => changes.length >= n)).pipe(Effect.zipRight(Ref.get(seen)))
  })

const arrows = (changes: ReadonlyArray<CircuitBreaker.StateChange>) => changes.map(({ from, to }) => `${from} → ${to}`)

describe("CircuitBreaker", () => {
  it.scoped("stays closed while the window holds fewer than minimumCalls calls", () =>
    Effect.gen(function*() {
      const breaker = yield* make("below-minimum")
      const results = yield* Effect.all([call(breaker, sinkDown), call(breaker, sinkDown), call(breaker, sinkDown)])
      expect(results.every((result) => Either.isLeft(result) && result.left._tag === "SinkDown")).toBe(true)
      expect(yield* breaker.state).toBe("closed")
    }))

  it.scoped("opens on the failure rate over a full window", () =>
    Effect.gen(function*() {
      const breaker = yield* make("failure-rate")
      const changes = yield* record(breaker)
      yield* times(2, call(breaker, Effect.void))
      yield* call(breaker, sinkDown)
      expect(yield* breaker.state).toBe("closed")
      yield* call(breaker, sinkDown)
      expect(yield* breaker.state).toBe("open")
      expect(yield* changes(1)).toMatchObject([
        { breaker: "failure-rate", from: "closed", to: "open", reason: "failure rate 0.50 ≥ 0.5 over 4 calls", at: 0 }
      ])
    }))

  it.scoped("judges only the last windowSize calls", () =>
    Effect.gen(function*() {
      const breaker = yield* make("sliding-window")
      yield* call(breaker, sinkDown)
      yield* times(4, call(breaker, Effect.void))
      // 2 failures of 7 calls in all, but of the last 4: 0.5.
      yield* call(breaker, sinkDown)
      expect(yield* breaker.state).toBe("closed")
      yield* call(breaker, sinkDown)
      expect(yield* breaker.state).toBe("open")
    }))

  it.scoped("opens on the slow-call rate, counting slow successes and slow failures alike", () =>
    Effect.gen(function*() {
      const breaker = yield* make("slow-calls")
      const changes = yield* record(breaker)
      yield* times(2, call(breaker, Effect.void))
      yield* call(breaker, slow)
      expect(yield* breaker.state).toBe("closed")
      yield* call(breaker, Effect.zipRight(slow, badRecord))
      expect(yield* breaker.state).toBe("open")
      expect(yield* changes(1)).toMatchObject([
        { to: "open", reason: "slow-call rate 0.50 ≥ 0.5 over 4 calls (slower than 1s)" }
      ])
    }))

  it.scoped("lets errors that do not count pass through as successes", () =>
    Effect.gen(function*() {
      const breaker = yield* make("uncounted")
      const results = yield* Effect.all(Array.from({ length: 10 }, () => call(breaker, badRecord)))
      expect(results.every((result) => Either.isLeft(result) && result.left._tag === "BadRecord")).toBe(true)
      expect(yield* breaker.state).toBe("closed")
    }))

  it.scoped("fails fast while open, without running the effect", () =>
    Effect.gen(function*() {
      const breaker = yield* make("fail-fast")
      yield* trip(breaker)
      const runs = yield* Ref.make(0)
      const error = yield* Effect.flip(breaker.protect(Ref.update(runs, (n) => n + 1)))
      expect(error).toBeInstanceOf(CircuitBreaker.CircuitOpenError)
      expect(error).toMatchObject({ breaker: "fail-fast", state: "open", retryAt: 1000 })
      expect(error.message).toBe("circuit breaker fail-fast is open until 1970-01-01T00:00:01.000Z")
      expect(yield* Ref.get(runs)).toBe(0)
    }))

  it.scoped("half-opens once openDuration has passed, with no call needed", () =>
    Effect.gen(function*() {
      const breaker = yield* make("half-opens")
      const changes = yield* record(breaker)
      yield* trip(breaker)
      yield* TestClock.adjust("999 millis")
      expect(yield* breaker.state).toBe("open")
      yield* TestClock.adjust("1 millis")
      expect(arrows(yield* changes(2))).toEqual(["closed → open", "open → half-open"])
      expect(yield* breaker.state).toBe("half-open")
    }))

  it.scoped("admits at most halfOpenMaxProbes calls at once while half-open", () =>
    Effect.gen(function*() {
      const breaker = yield* make("probe-limit")
      yield* trip(breaker)
      yield* TestClock.adjust("1 second")
      const latch = yield* Deferred.make<void>()
      const started = yield* Ref.make(0)
      const refused = yield* Ref.make(0)
      const probe = breaker.protect(Ref.update(started, (n) => n + 1).pipe(Effect.zipRight(Deferred.await(latch))))
        .pipe(
          Effect.tapError(() => Ref.update(refused, (n) => n + 1)),
          Effect.either
        )
      const all = yield* Effect.fork(Effect.all(Array.from({ length: 20 }, () => probe), { concurrency: "unbounded" }))
      yield* eventually(Effect.zipWith(Ref.get(started), Ref.get(refused), (s, r) => s + r === 20))
      expect(yield* Ref.get(started)).toBe(2)
      yield* Deferred.succeed(latch, undefined)
      const results = yield* Fiber.join(all)
      expect(results.filter(Either.isRight)).toHaveLength(2)
      const refusals = results.filter(Either.isLeft).map(({ left }) => left)
      expect(refusals).toHaveLength(18)
      expect(refusals.every(({ retryAt, state }) => state === "half-open" && retryAt === undefined)).toBe(true)
      expect(yield* breaker.state).toBe("closed")
    }))

  it.scoped("closes after halfOpenSuccessesToClose successful probes", () =>
    Effect.gen(function*() {
      const breaker = yield* make("closes", { halfOpenSuccessesToClose: 3 })
      yield* trip(breaker)
      yield* TestClock.adjust("1 second")
      yield* times(2, call(breaker, Effect.void))
      expect(yield* breaker.state).toBe("half-open")
      // An error that does not count is an answer from a working sink.
      yield* call(breaker, badRecord)
      expect(yield* breaker.state).toBe("closed")
    }))

  it.scoped("re-opens on a failed or slow probe, doubling the open period up to maxOpenDuration", () =>
    Effect.gen(function*() {
      const breaker = yield* make("backoff")
      const changes = yield* record(breaker)
      yield* trip(breaker)
      expect(yield* openFor(breaker)).toBe(1000)
      yield* TestClock.adjust("1 second")
      yield* call(breaker, sinkDown)
      expect(yield* openFor(breaker)).toBe(2000)
      yield* TestClock.adjust("2 seconds")
      yield* call(breaker, slow)
      expect(yield* openFor(breaker)).toBe(4000)
      yield* TestClock.adjust("4 seconds")
      yield* call(breaker, sinkDown)
      expect(yield* openFor(breaker)).toBe(4000)
      const seen = yield* changes(7)
      expect(seen.map(({ reason }) => reason).filter((reason) => reason.startsWith("probe"))).toEqual([
        "probe failed: connection refused",
        "probe took 2s (slower than 1s)",
        "probe failed: connection refused"
      ])
      expect(arrows(seen)).toEqual([
        "closed → open",
        "open → half-open",
        "half-open → open",
        "open → half-open",
        "half-open → open",
        "open → half-open",
        "half-open → open"
      ])
    }))

  it.scoped("starts from openDuration again once it has closed", () =>
    Effect.gen(function*() {
      const breaker = yield* make("backoff-reset")
      yield* trip(breaker)
      yield* TestClock.adjust("1 second")
      yield* call(breaker, sinkDown)
      expect(yield* openFor(breaker)).toBe(2000)
      yield* TestClock.adjust("2 seconds")
      yield* times(2, call(breaker, Effect.void))
      expect(yield* breaker.state).toBe("closed")
      yield* trip(breaker)
      expect(yield* openFor(breaker)).toBe(1000)
    }))

  it.scoped("ignores outcomes of calls admitted in an earlier phase", () =>
    Effect.gen(function*() {
      const breaker = yield* make("late-outcome")
      const latch = yield* Deferred.make<void>()
      const late = yield* Effect.fork(call(breaker, Deferred.await(latch).pipe(Effect.zipRight(sinkDown))))
      yield* Effect.yieldNow()
      yield* trip(breaker)
      yield* TestClock.adjust("1 second")
      yield* Deferred.succeed(latch, undefined)
      expect(yield* Fiber.join(late)).toMatchObject({ left: { _tag: "SinkDown" } })
      expect(yield* breaker.state).toBe("half-open")
    }))

  it.scoped("gives an interrupted probe's slot back", () =>
    Effect.gen(function*() {
      const breaker = yield* make("interrupted-probe", { halfOpenMaxProbes: 1, halfOpenSuccessesToClose: 1 })
      yield* trip(breaker)
      yield* TestClock.adjust("1 second")
      const stuck = yield* Effect.fork(breaker.protect(Effect.never))
      yield* Effect.yieldNow()
      expect((yield* refusal(breaker)).state).toBe("half-open")
      yield* Fiber.interrupt(stuck)
      expect(Either.isRight(yield* call(breaker, Effect.void))).toBe(true)
      expect(yield* breaker.state).toBe("closed")
    }))

  it.scoped("stays forced open until reset, which clears the window", () =>
    Effect.gen(function*() {
      const breaker = yield* make("manual")
      yield* times(3, call(breaker, sinkDown))
      yield* breaker.forceOpen
      const error = yield* refusal(breaker)
      expect(error).toMatchObject({ state: "open", retryAt: undefined })
      expect(error.message).toBe("circuit breaker manual is forced open until reset")
      yield* TestClock.adjust("1 hour")
      expect(yield* breaker.state).toBe("open")
      yield* breaker.reset
      expect(yield* breaker.state).toBe("closed")
      yield* call(breaker, sinkDown)
      expect(yield* breaker.state).toBe("closed")
    }))

  it.scoped("publishes transitions on changes, the state gauge and the transition counter", () =>
    Effect.gen(function*() {
      const breaker = yield* make("observed")
      const changes = yield* record(breaker)
      const opened = Metric.tagged(
        Metric.tagged(Metric.tagged(CircuitBreaker.transitionsTotal, "breaker", "observed"), "from", "closed"),
        "to",
        "open"
      )
      expect((yield* gauge("observed")).value).toBe(0)
      yield* trip(breaker)
      expect((yield* gauge("observed")).value).toBe(2)
      expect((yield* Metric.value(opened)).count).toBe(1)
      yield* TestClock.adjust("1 second")
      expect(yield* breaker.state).toBe("half-open")
      expect((yield* gauge("observed")).value).toBe(1)
      yield* times(2, call(breaker, Effect.void))
      expect((yield* gauge("observed")).value).toBe(0)
      expect(arrows(yield* changes(3))).toEqual(["closed → open", "open → half-open", "half-open → closed"])
    }))

  it.scoped("adds an event to the span of the call that changed the state, and only to it", () =>
    Effect.gen(function*() {
      const breaker = yield* make("traced")
      const changes = yield* record(breaker)
      yield* times(3, call(breaker, sinkDown))
      const event = yield* Effect.gen(function*() {
        const span = yield* Effect.currentSpan
        const event = vi.spyOn(span, "event")
        yield* call(breaker, sinkDown)
        return event
      }).pipe(Effect.withSpan("write"))
      expect(event).toHaveBeenCalledWith("circuit_breaker.state_change", expect.any(BigInt), {
        "circuit_breaker.name": "traced",
        "circuit_breaker.from": "closed",
        "circuit_breaker.to": "open",
        "circuit_breaker.reason": "failure rate 1.00 ≥ 0.5 over 4 calls"
      })
      // The half-open that follows belongs to no call, least of all to that ended span.
      yield* TestClock.adjust("1 second")
      expect(arrows(yield* changes(2))).toEqual(["closed → open", "open → half-open"])
      expect(event.mock.calls.filter(([name]) => name === "circuit_breaker.state_change")).toHaveLength(1)
    }))

  it.scoped("refuses a configuration under which it could never open", () =>
    Effect.gen(function*() {
      const defect = yield* make("misconfigured", { minimumCalls: 5 }).pipe(
        Effect.zipRight(Effect.void),
        Effect.catchAllDefect(Effect.succeed)
      )
      expect(defect).toMatchObject({
        _tag: "IllegalArgumentException",
        message: "circuit breaker misconfigured: needs 1 ≤ minimumCalls ≤ windowSize"
      })
    }))
})
