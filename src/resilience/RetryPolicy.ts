/**
 * Retries of a sink's transient failures: exponential backoff with jitter, each delay capped, and a
 * bound on the time spent retrying, after which the last error goes back to the caller.
 *
 * With a circuit breaker: protect inside, retry outside.
 *
 *   write.pipe(breaker.protect, retryTransient("postgres", isTransient, policy))
 *
 * Every attempt then passes through the breaker, which counts each one; once it opens, attempts fail
 * fast with CircuitOpenError and never reach the sink. The retry treats that error as transient but
 * waits at least until its `retryAt`, so the caller sleeps through the open period instead of hammering
 * the breaker, and its next attempt is one of the half-open probes. (Retrying inside `protect` would
 * show the breaker one outcome per retried batch, and hold a probe slot through the whole backoff.)
 */
import { ATTR_ERROR_TYPE } from "@opentelemetry/semantic-conventions"
import { Clock, Duration, Effect, Metric, Schedule } from "effect"
import { CircuitOpenError } from "./CircuitBreaker.ts"

export interface RetryPolicy {
  /** The bound of the first delay. */
  readonly initialDelay: Duration.DurationInput
  /** The bound of every delay. */
  readonly maxDelay: Duration.DurationInput
  /** How long after the first failure the last retry may start. */
  readonly maxElapsed: Duration.DurationInput
  /** Growth of the delay bound per retry. */
  readonly factor: number
}

/** Tagged `sink`. */
export const retriesTotal = Metric.counter("sentinel_retries_total", {
  description: "Retries of failed sink calls",
  incremental: true
})

/** One decision to retry. */
interface Retry<E> {
  readonly error: E
  /** 1 for the first retry. */
  readonly attempt: number
  /** Since the first failure. */
  readonly elapsed: Duration.Duration
}

/**
 * The n-th delay is drawn from [½·d, d] with d = min(initialDelay · factorⁿ, maxDelay) ("equal
 * jitter"): capped without losing the jitter at the cap, where synchronised retries would hurt most.
 */
const backoff = (policy: RetryPolicy) =>
  Schedule.exponential(policy.initialDelay, policy.factor).pipe(
    Schedule.modifyDelay((_, delay) => Duration.min(delay, policy.maxDelay)),
    Schedule.jitteredWith({ min: 0.5, max: 1 })
  )

/** An open breaker says when it half-opens; asking it again before then only gets the same answer. */
const notBeforeRetryAt = (error: unknown, delay: Duration.Duration) => {
  const retryAt = error instanceof CircuitOpenError ? error.retryAt : undefined
  return retryAt === undefined
    ? Effect.succeed(delay)
    : Effect.map(Clock.currentTimeMillis, (now) => Duration.max(delay, Duration.millis(retryAt - now)))
}

/** A retry as an event of the span that waits for it (a batch's, a relay claim's). */
const retryEvent = (sink: string, attempt: number, delay: Duration.Duration, error: { readonly message: string }) =>
  Effect.flatMap(
    Effect.option(Effect.currentSpan),
    (span) =>
      span._tag === "None" ? Effect.void : Effect.map(Clock.currentTimeNanos, (now) =>
        span.value.event("retry", now, {
          "sentinel.sink": sink,
          "sentinel.retry.attempt": attempt,
          "sentinel.retry.delay_ms": Duration.toMillis(delay),
          [ATTR_ERROR_TYPE]: typeof error === "object" && "_tag" in error ? String(error._tag) : "Error",
          "sentinel.retry.error": error.message
        }))
  )

/** An operator holds the sink's breaker open (maintenance, say): waiting for the reset is no failure. */
const isForcedOpen = (error: unknown) =>
  error instanceof CircuitOpenError && error.state === "open" && error.retryAt === undefined

// Schedule has no tap that sees the final delay; this one leaves it unchanged.
const tapDelay = <Out>(f: (out: Out, delay: Duration.Duration) => Effect.Effect<void>) =>
  Schedule.modifyDelayEffect((out: Out, delay) => Effect.as(f(out, delay), delay))

/**
 * The schedule of `retryTransient`, for what is not an effect: a layer's construction
 * (`Layer.retry`), say.
 */
export const transientRetries = <E extends { readonly message: string }>(
  sink: string,
  isTransient: (error: E) => boolean,
  policy: RetryPolicy
) => {
  const maxElapsed = Duration.decode(policy.maxElapsed)
  const retries = Metric.tagged(retriesTotal, "sink", sink)
  return Schedule.identity<E | CircuitOpenError>().pipe(
    Schedule.zipWith(Schedule.elapsed, (error, elapsed) => ({ error, elapsed })),
    Schedule.zipWith(Schedule.count, (retry, n): Retry<E | CircuitOpenError> => ({ ...retry, attempt: n + 1 })),
    Schedule.zipLeft(backoff(policy)),
    Schedule.whileOutput(({ elapsed, error }) =>
      isForcedOpen(error) ||
      ((error instanceof CircuitOpenError || isTransient(error)) && Duration.lessThan(elapsed, maxElapsed))
    ),
    Schedule.modifyDelayEffect(({ error }, delay) => notBeforeRetryAt(error, delay)),
    // The last retry starts at the bound rather than not at all: the caller waits `maxElapsed`, no less.
    Schedule.modifyDelay(({ elapsed, error }, delay) =>
      isForcedOpen(error) ? delay : Duration.min(delay, Duration.subtract(maxElapsed, elapsed))
    ),
    tapDelay(({ attempt, error }, delay) =>
      Effect.logWarning(`${sink} call failed, retry ${attempt} in ${Duration.format(delay)}: ${error.message}`).pipe(
        Effect.annotateLogs({ sink, attempt, delayMillis: Duration.toMillis(delay) }),
        Effect.zipRight(Metric.increment(retries)),
        Effect.zipRight(retryEvent(sink, attempt, delay, error))
      )
    )
  )
}

/**
 * Retries `effect` while it fails with an error that `isTransient` accepts, or with CircuitOpenError;
 * any other error, or the last one once `policy.maxElapsed` has passed since the first failure, is
 * returned. Each retry is logged and counted in `sentinel_retries_total{sink}`.
 */
export const retryTransient = <E extends { readonly message: string }>(
  sink: string,
  isTransient: (error: E) => boolean,
  policy: RetryPolicy
) => {
  const schedule = transientRetries(sink, isTransient, policy)
  return <A, R>(effect: Effect.Effect<A, E | CircuitOpenError, R>): Effect.Effect<A, E | CircuitOpenError, R> =>
    Effect.retry(effect, schedule)
}
