/**
 * Supervision of the daemon's long-running fibers (each path with its Kafka consumer, the outbox
 * relay): a fiber that fails or dies is logged, counted and started again after a backoff. A crash
 * loop — more than `maxRestarts` restarts, each after a run shorter than `window` — is given up:
 * the failure is returned, the daemon exits non-zero, and an orchestrator restarts it whole.
 *
 * What a restart starts again must be whole: a path restarts with a new consumer, which resumes
 * from the committed offsets, so records a crashed run had taken are read again, not skipped.
 */
import { Cause, Clock, Duration, Effect, Exit, Metric } from "effect"

export interface SupervisionConfig {
  readonly maxRestarts: number
  /** A run that lasted longer than this was healthy: the count of restarts starts again. */
  readonly window: Duration.Duration
  /** The first backoff; it doubles on each consecutive restart, up to 30 s. */
  readonly backoff: Duration.Duration
}

export const fiberRestarts = Metric.counter("sentinel_fiber_restarts_total", {
  description: "Supervised fibers started again after a failure or a defect",
  incremental: true
})

/** What a supervised fiber is doing, as reported to the daemon's readiness. */
export interface FiberStatus {
  /** `restarting`: crashed, waiting out its backoff; `failed`: gave up after a crash loop. */
  readonly state: "running" | "restarting" | "failed" | "stopped"
  /** Consecutive restarts: the count the crash-loop limit is judged on. */
  readonly restarts: number
  readonly lastError: string | undefined
  /** Epoch milliseconds of the last change. */
  readonly since: number
}

const maxBackoff = Duration.seconds(30)

/**
 * Runs `effect`, starting it again after each failure or defect as described above. `report`, when
 * given, hears every change of the fiber's status.
 */
export const supervised = <A, E, R>(
  name: string,
  config: SupervisionConfig,
  effect: Effect.Effect<A, E, R>,
  report: (status: FiberStatus) => Effect.Effect<void> = () => Effect.void
): Effect.Effect<A, E, R> => {
  const status = (state: FiberStatus["state"], restarts: number, cause?: Cause.Cause<E>) =>
    Effect.flatMap(
      Clock.currentTimeMillis,
      (since) => report({ state, restarts, since, lastError: cause === undefined ? undefined : errorOf(cause) })
    )
  const attempt = (restarts: number): Effect.Effect<A, E, R> =>
    Effect.gen(function*() {
      const started = yield* Clock.currentTimeMillis
      yield* status("running", restarts)
      const exit = yield* Effect.exit(effect)
      if (Exit.isSuccess(exit) || Cause.isInterruptedOnly(exit.cause)) {
        yield* status("stopped", restarts)
        return yield* exit
      }
      const ranFor = Duration.millis((yield* Clock.currentTimeMillis) - started)
      const consecutive = Duration.greaterThan(ranFor, config.window) ? 1 : restarts + 1
      if (consecutive > config.maxRestarts) {
        yield* status("failed", consecutive, exit.cause)
        yield* Effect.logError(`${name} keeps crashing (${config.maxRestarts} restarts): giving up`, exit.cause)
        return yield* exit
      }
      const delay = Duration.min(Duration.times(config.backoff, 2 ** (consecutive - 1)), maxBackoff)
      yield* status("restarting", consecutive, exit.cause)
      yield* Effect.logError(`${name} crashed; restart ${consecutive} in ${Duration.format(delay)}`, exit.cause)
      yield* Metric.increment(Metric.tagged(fiberRestarts, "fiber", name))
      yield* Effect.sleep(delay)
      return yield* attempt(consecutive)
    })
  return attempt(0).pipe(Effect.annotateLogs({ fiber: name }))
}

const errorOf = <E>(cause: Cause.Cause<E>): string => {
  const error = Cause.squash(cause)
  return error instanceof Error ? error.message : String(error)
}
