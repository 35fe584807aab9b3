/**
 * A circuit breaker, one per sink. While a sink is down or drowning, calling it only adds load and
 * makes every batch wait for a timeout; the breaker stops calling it, lets callers fail fast, and
 * later admits a few probes to find out whether it has recovered. Effect has none, so this is ours,
 * modelled on Resilience4j's count-based breaker:
 *
 *   closed    → open       the failure rate or the slow-call rate over the last `windowSize` calls
 *                          reaches its threshold (judged once `minimumCalls` calls are in the window)
 *   open      → half-open  the open period is over: `openDuration`, doubled on each re-open from
 *                          half-open up to `maxOpenDuration`, back to `openDuration` once closed
 *   half-open → closed     `halfOpenSuccessesToClose` probes succeeded
 *   half-open → open       a probe failed in a way that counts, or was slow
 *
 * Operators can pin it open (`forceOpen`) until they `reset` it.
 */
import {
  Cause,
  Clock,
  Context,
  Data,
  Duration,
  Effect,
  Exit,
  Metric,
  MetricLabel,
  Option,
  PubSub,
  type Scope,
  Stream,
  SynchronizedRef,
  Tracer
} from "effect"

export type State = "closed" | "open" | "half-open"

export interface CircuitBreakerConfig {
  /** How many of the most recent calls the rates are computed over. */
  readonly windowSize: number
  /** No verdict until the window holds this many calls: two failures out of three are not an outage. */
  readonly minimumCalls: number
  /** Share (0–1) of counted failures in the window at which the breaker opens. */
  readonly failureRateThreshold: number
  /** Share (0–1) of slow calls in the window at which the breaker opens; above 1 disables it. */
  readonly slowCallRateThreshold: number
  /** A call that takes longer than this is slow, whether it succeeded or failed. */
  readonly slowCallDuration: Duration.DurationInput
  /** The first open period. */
  readonly openDuration: Duration.DurationInput
  /** The longest open period, however often it re-opens. */
  readonly maxOpenDuration: Duration.DurationInput
  /** Calls admitted at once while half-open; the others fail fast. */
  readonly halfOpenMaxProbes: number
  readonly halfOpenSuccessesToClose: number
  /**
   * Whether an error means the sink itself is failing (e.g. a transient infrastructure error). Other
   * errors, and defects, pass through and count as successes: a bad record is not an outage.
   */
  readonly isFailure: (error: unknown) => boolean
}

export interface StateChange {
  readonly breaker: string
  readonly from: State
  readonly to: State
  /** e.g. "failure rate 0.62 ≥ 0.5 over 20 calls". */
  readonly reason: string
  /** Clock time, epoch milliseconds. */
  readonly at: number
}

export class CircuitOpenError extends Data.TaggedError("CircuitOpenError")<{
  readonly breaker: string
  /** `open`, or `half-open` with every probe slot taken. */
  readonly state: "open" | "half-open"
  /** Clock time (epoch ms) at which the breaker half-opens; unknown while half-open or forced open. */
  readonly retryAt: number | undefined
}> {
  override get message(): string {
    return this.state === "half-open"
      ? `circuit breaker ${this.breaker} is half-open and all its probes are in flight`
      : this.retryAt === undefined
      ? `circuit breaker ${this.breaker} is forced open until reset`
      : `circuit breaker ${this.breaker} is open until ${new Date(this.retryAt).toISOString()}`
  }
}

export interface CircuitBreaker {
  readonly name: string
  /** Runs `effect` if the breaker admits it and counts its outcome; fails fast with CircuitOpenError if not. */
  readonly protect: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | CircuitOpenError, R>
  readonly state: Effect.Effect<State>
  /** Every state change from the moment of subscribing. */
  readonly changes: Stream.Stream<StateChange>
  /** Opens the breaker until `reset`. */
  readonly forceOpen: Effect.Effect<void>
  /** Closes the breaker with an empty window and the base open period. */
  readonly reset: Effect.Effect<void>
}

/** 0 closed, 1 half-open, 2 open; tagged `breaker`. */
export const stateGauge = Metric.gauge("sentinel_circuit_breaker_state", {
  description: "Circuit breaker state: 0 closed, 1 half-open, 2 open"
})

/** Tagged `breaker`, `from` and `to`. */
export const transitionsTotal = Metric.counter("sentinel_circuit_breaker_transitions_total", {
  description: "Circuit breaker state changes",
  incremental: true
})

const gaugeValue: Record<State, number> = { closed: 0, "half-open": 1, open: 2 }

/** What the window keeps of a call. */
interface Call {
  readonly failed: boolean
  readonly slow: boolean
}

/**
 * The breaker's phases. Every new phase takes a new `generation`, and an outcome counts only in the
 * phase that admitted its call: a call admitted while closed that returns after the breaker opened
 * says nothing about the half-open sink.
 */
type Machine = Data.TaggedEnum<{
  Closed: { readonly generation: number; readonly calls: ReadonlyArray<Call> }
  /** `halfOpenAt` is undefined when an operator forced it open. */
  Open: { readonly generation: number; readonly openFor: Duration.Duration; readonly halfOpenAt: number | undefined }
  /** `openFor` is the open period just over: the next one, if a probe fails, is twice as long. */
  HalfOpen: {
    readonly generation: number
    readonly openFor: Duration.Duration
    readonly probes: number
    readonly successes: number
  }
}>
const Machine = Data.taggedEnum<Machine>()

const stateOf = Machine.$match({
  Closed: (): State => "closed",
  Open: (): State => "open",
  HalfOpen: (): State => "half-open"
})

/** A step of the machine: its result, the next phase and, when the public state changes, why. */
type Step<A> = readonly [result: A, next: Machine, reason?: string | undefined]

interface Permit {
  readonly generation: number
  readonly startedAt: number
}

const toHalfOpen = (open: Data.TaggedEnum.Value<Machine, "Open">): Step<void> => [
  undefined,
  Machine.HalfOpen({ generation: open.generation + 1, openFor: open.openFor, probes: 0, successes: 0 }),
  `open period of ${Duration.format(open.openFor)} is over`
]

/** Calls and `state` reads apply a due half-open themselves rather than rely on the timer's punctuality. */
const halfOpenIfDue = (machine: Machine, now: number): Step<void> =>
  machine._tag === "Open" && machine.halfOpenAt !== undefined && now >= machine.halfOpenAt
    ? toHalfOpen(machine)
    : [undefined, machine]

const open = (from: Machine, openFor: Duration.Duration, now: number): Machine =>
  Machine.Open({ generation: from.generation + 1, openFor, halfOpenAt: now + Duration.toMillis(openFor) })

const closed = (from: Machine): Machine => Machine.Closed({ generation: from.generation + 1, calls: [] })

const rate = (calls: ReadonlyArray<Call>, counts: (call: Call) => boolean) => calls.filter(counts).length / calls.length

/** Why the window says the sink is unhealthy, if it does. */
const verdict = (config: CircuitBreakerConfig, calls: ReadonlyArray<Call>): string | undefined => {
  if (calls.length < config.minimumCalls) return undefined
  const failureRate = rate(calls, (call) => call.failed)
  if (failureRate >= config.failureRateThreshold) {
    return `failure rate ${failureRate.toFixed(2)} ≥ ${config.failureRateThreshold} over ${calls.length} calls`
  }
  const slowRate = rate(calls, (call) => call.slow)
  if (slowRate >= config.slowCallRateThreshold) {
    return `slow-call rate ${slowRate.toFixed(2)} ≥ ${config.slowCallRateThreshold} over ${calls.length} calls ` +
      `(slower than ${Duration.format(config.slowCallDuration)})`
  }
  return undefined
}

const admit = (name: string, config: CircuitBreakerConfig) =>
(
  machine: Machine,
  now: number
): Step<Effect.Effect<Permit, CircuitOpenError>> => {
  const [, current, reason] = halfOpenIfDue(machine, now)
  const permit = Effect.succeed({ generation: current.generation, startedAt: now })
  switch (current._tag) {
    case "Closed":
      return [permit, current, reason]
    case "Open":
      return [
        Effect.fail(new CircuitOpenError({ breaker: name, state: "open", retryAt: current.halfOpenAt })),
        current,
        reason
      ]
    case "HalfOpen":
      return current.probes < config.halfOpenMaxProbes
        ? [permit, Machine.HalfOpen({ ...current, probes: current.probes + 1 }), reason]
        : [
          Effect.fail(new CircuitOpenError({ breaker: name, state: "half-open", retryAt: undefined })),
          current,
          reason
        ]
  }
}

const messageOf = (error: unknown): string => error instanceof Error ? error.message : String(error)

const complete = (config: CircuitBreakerConfig, permit: Permit, exit: Exit.Exit<unknown, unknown>) =>
(
  machine: Machine,
  now: number
): Step<void> => {
  // The phase that admitted the call is over (and Open admits none): the outcome says nothing about this one.
  if (machine.generation !== permit.generation || machine._tag === "Open") return [undefined, machine]
  // An interrupted call has no outcome; it only gives back its probe slot.
  if (Exit.isFailure(exit) && Cause.isInterruptedOnly(exit.cause)) {
    return [
      undefined,
      machine._tag === "HalfOpen" ? Machine.HalfOpen({ ...machine, probes: machine.probes - 1 }) : machine
    ]
  }
  const failure = Exit.isFailure(exit)
    ? Option.filter(Cause.failureOption(exit.cause), config.isFailure)
    : Option.none()
  const duration = Duration.millis(now - permit.startedAt)
  const call: Call = { failed: Option.isSome(failure), slow: Duration.greaterThan(duration, config.slowCallDuration) }
  if (machine._tag === "Closed") {
    const calls = [...machine.calls.slice(machine.calls.length < config.windowSize ? 0 : 1), call]
    const reason = verdict(config, calls)
    return reason === undefined
      ? [undefined, Machine.Closed({ ...machine, calls })]
      : [undefined, open(machine, Duration.decode(config.openDuration), now), reason]
  }
  if (call.failed || call.slow) {
    const openFor = Duration.min(Duration.times(machine.openFor, 2), config.maxOpenDuration)
    const reason = Option.match(failure, {
      onSome: (error) => `probe failed: ${messageOf(error)}`,
      onNone: () => `probe took ${Duration.format(duration)} (slower than ${Duration.format(config.slowCallDuration)})`
    })
    return [undefined, open(machine, openFor, now), reason]
  }
  const successes = machine.successes + 1
  return successes >= config.halfOpenSuccessesToClose
    ? [undefined, closed(machine), `${successes} successful probes`]
    : [undefined, Machine.HalfOpen({ ...machine, probes: machine.probes - 1, successes })]
}

const validate = (config: CircuitBreakerConfig): string | undefined =>
  !(config.windowSize >= 1 && config.minimumCalls >= 1 && config.minimumCalls <= config.windowSize)
    ? "needs 1 ≤ minimumCalls ≤ windowSize"
    : !(config.halfOpenMaxProbes >= 1 && config.halfOpenSuccessesToClose >= 1)
    ? "needs at least one half-open probe and success"
    : Duration.greaterThan(config.openDuration, config.maxOpenDuration)
    ? "needs openDuration ≤ maxOpenDuration"
    : undefined

/** A breaker named after its sink. Its half-open timers and subscribers end with the scope. */
export const make = (name: string, config: CircuitBreakerConfig): Effect.Effect<CircuitBreaker, never, Scope.Scope> =>
  Effect.gen(function*() {
    const invalid = validate(config)
    if (invalid !== undefined) {
      return yield* Effect.die(new Cause.IllegalArgumentException(`circuit breaker ${name}: ${invalid}`))
    }
    const scope = yield* Effect.scope
    const pubsub = yield* Effect.acquireRelease(PubSub.unbounded<StateChange>(), PubSub.shutdown)
    const gauge = Metric.tagged(stateGauge, "breaker", name)
    const ref = yield* SynchronizedRef.make<Machine>(Machine.Closed({ generation: 0, calls: [] }))
    yield* Metric.set(gauge, gaugeValue.closed)

    const announce = (change: StateChange) =>
      Effect.gen(function*() {
        const log = change.to === "open" ? Effect.logWarning : Effect.logInfo
        yield* log(`circuit breaker ${name}: ${change.from} → ${change.to} (${change.reason})`).pipe(
          Effect.annotateLogs({ breaker: name, from: change.from, to: change.to })
        )
        const span = yield* Effect.option(Effect.currentSpan)
        if (Option.isSome(span)) {
          span.value.event("circuit_breaker.state_change", yield* Clock.currentTimeNanos, {
            "circuit_breaker.name": name,
            "circuit_breaker.from": change.from,
            "circuit_breaker.to": change.to,
            "circuit_breaker.reason": change.reason
          })
        }
        yield* Metric.set(gauge, gaugeValue[change.to])
        yield* Metric.increment(
          Metric.taggedWithLabels(transitionsTotal, [
            MetricLabel.make("breaker", name),
            MetricLabel.make("from", change.from),
            MetricLabel.make("to", change.to)
          ])
        )
        yield* PubSub.publish(pubsub, change)
      })

    // Every read-modify-write holds the lock, so concurrent calls lose no update, and changes are
    // announced in the order they happen.
    const update = <A>(step: (machine: Machine, now: number) => Step<A>): Effect.Effect<A> =>
      SynchronizedRef.modifyEffect(ref, (machine) =>
        Effect.gen(function*() {
          const now = yield* Clock.currentTimeMillis
          const [result, next, reason] = step(machine, now)
          if (reason !== undefined) {
            yield* announce({ breaker: name, from: stateOf(machine), to: stateOf(next), reason, at: now })
            if (next._tag === "Open" && next.halfOpenAt !== undefined) yield* halfOpenLater(next)
          }
          return [result, next] as const
        }))

    // Makes the half-open visible on time (gauge, `changes`) even when no call comes to notice it.
    const halfOpenLater = (opened: Data.TaggedEnum.Value<Machine, "Open">): Effect.Effect<void> =>
      Effect.sleep(opened.openFor).pipe(
        Effect.zipRight(update((machine) =>
          machine._tag === "Open" && machine.generation === opened.generation
            ? toHalfOpen(machine)
            : [undefined, machine]
        )),
        // Not part of the call that opened the breaker: its span has ended by then.
        Effect.mapInputContext((context: Context.Context<never>) => Context.omit(Tracer.ParentSpan)(context)),
        // Forked under the lock, which is uninterruptible; the scope must still be able to end it.
        Effect.interruptible,
        Effect.forkIn(scope),
        Effect.asVoid
      )

    const protect = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | CircuitOpenError, R> =>
      Effect.acquireUseRelease(
        Effect.flatten(update(admit(name, config))),
        () => effect,
        (permit, exit) => update(complete(config, permit, exit))
      )

    return {
      name,
      protect,
      state: update((machine, now) => {
        const [, next, reason] = halfOpenIfDue(machine, now)
        return [stateOf(next), next, reason]
      }),
      changes: Stream.fromPubSub(pubsub),
      forceOpen: update((machine) => [
        undefined,
        Machine.Open({
          generation: machine.generation + 1,
          openFor: Duration.decode(config.openDuration),
          halfOpenAt: undefined
        }),
        machine._tag === "Open" ? undefined : "forced open by an operator"
      ]),
      reset: update((machine) => [
        undefined,
        closed(machine),
        machine._tag === "Closed" ? undefined : "reset by an operator"
      ])
    }
  })
