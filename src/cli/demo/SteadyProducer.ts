/**
 * The demo's fraud detector: realistic output (src/produce/DetectorOutput.ts, a few malformed and
 * re-sent records among it) at a steady rate until told to stop. `produce` publishes a plan of a
 * fixed size, so this publishes consecutive slices of one long plan: each slice continues the
 * message numbers where the previous one ended and is sized to keep the overall rate, making up for
 * the time the previous slice spent connecting.
 */
import { Deferred, Effect, Fiber, type Scope } from "effect"
import type { SentinelSettings } from "../../config/Config.ts"
import { type PlanTally, tally } from "../../produce/DetectorOutput.ts"
import { produce } from "../../produce/Producer.ts"
import type { KafkaError } from "../../source/KafkaSource.ts"

export interface SteadyProducer {
  /** Records published so far. */
  readonly published: () => number
  /** Stops after the slice in flight (a couple of seconds at most); what was published, counted. */
  readonly stop: Effect.Effect<PlanTally, KafkaError>
}

export interface SteadyOptions {
  /** Records per second. */
  readonly rate: number
  readonly alertShare: number | undefined
  /** Number of the first message (its transaction id): a run continues where the last one on these topics ended. */
  readonly first: number
}

/** How often the producer may stop; each slice is a producer connection of its own. */
const sliceSeconds = 2

const sum = <K extends string>(a: Readonly<Record<K, number>>, b: Readonly<Record<K, number>>): Record<K, number> =>
  Object.fromEntries(Object.keys(a).map((key) => [key, a[key as K] + b[key as K]])) as Record<K, number>

const add = (a: PlanTally, b: PlanTally): PlanTally => ({
  records: a.records + b.records,
  malformed: sum(a.malformed, b.malformed),
  detections: sum(a.detections, b.detections),
  alerts: a.alerts + b.alerts,
  duplicates: a.duplicates + b.duplicates,
  metrics: a.metrics + b.metrics,
  transactions: a.transactions + b.transactions,
  audits: a.audits + b.audits
})

export const start = (
  kafka: SentinelSettings["kafka"],
  options: SteadyOptions
): Effect.Effect<SteadyProducer, never, Scope.Scope> =>
  Effect.gen(function*() {
    const stopping = yield* Deferred.make<void>()
    let published = 0
    const began = Date.now()
    // Message n happens n seconds after `startAt` (DetectorOutput): the run's first message happens now.
    const startAt = new Date(began - options.first * 1000)
    const slices = Effect.gen(function*() {
      let total = tally([])
      for (let slice = 0; !(yield* Deferred.isDone(stopping)); slice++) {
        const due = options.rate * ((Date.now() - began) / 1000 + sliceSeconds)
        // A producer that cannot keep up falls behind rather than making ever longer slices.
        const count = Math.max(1, Math.min(Math.round(due - total.records), Math.ceil(3 * sliceSeconds * options.rate)))
        const before = total.records
        total = add(
          total,
          yield* produce(kafka, {
            count,
            rate: count / sliceSeconds,
            first: options.first + before,
            seed: options.first + slice + 1,
            start: startAt,
            ...(options.alertShare === undefined ? {} : { alertShare: options.alertShare }),
            onProgress: (sent) => (published = before + sent)
          })
        )
      }
      return total
    })
    const fiber = yield* Effect.forkScoped(slices)
    return {
      published: () => published,
      stop: Deferred.succeed(stopping, undefined).pipe(Effect.zipRight(Fiber.join(fiber)))
    }
  })
