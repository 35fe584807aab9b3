/**
 * The bounded buffer between kafkajs's batch handler (promises) and the pipeline's batches (Effect).
 *
 * Plain JavaScript on purpose: kafkajs hands over records a partition batch at a time, and at a
 * moderate rate those are a few records each, hundreds of times a second. Through an Effect queue
 * and stream each hand-over cost a fiber, deferreds and channel steps, which took most of the
 * daemon's main thread at 1,000 records/s (scripts/bench.ts `--profile`). Here a hand-over is an
 * array push, and the Effect side pays once per batch.
 *
 * At most `capacity` records wait; a hand-over that does not fit waits for a take to make room (one
 * larger than `capacity` waits for the buffer to be empty).
 */
import { Effect } from "effect"

/** Why a waiting hand-over was refused: the source is closing. */
export class HandoverClosed extends Error {
  constructor() {
    super("the source is closing")
  }
}

export interface Handover<A> {
  /**
   * Adds `items` (at most `capacity` of them). Returns `undefined` when they were taken in at once,
   * or a promise that resolves once they are (or rejects with HandoverClosed). A waiting hand-over
   * that is no longer `wanted` when its turn comes (its Kafka batch went stale in a rebalance, or its
   * handler gave up) is dropped instead: its promise resolves to `false`.
   */
  readonly offer: (items: ReadonlyArray<A>, wanted?: () => boolean) => Promise<boolean> | undefined
  /**
   * Up to `max` items, once `max` are waiting or `linger` ms have passed since the oldest waiting
   * one arrived; waits for a first item. One taker at a time. Interrupted, it takes nothing.
   */
  readonly take: (max: number, linger: number) => Effect.Effect<ReadonlyArray<A>>
  /** Up to `max` of the items waiting now, without waiting. */
  readonly takeNow: (max: number) => ReadonlyArray<A>
  /** Refuses every waiting and later hand-over. */
  readonly close: () => void
}

export const make = <A>(capacity: number): Handover<A> => {
  let items: Array<A> = []
  /** When the oldest waiting item arrived (ms), if any waits. */
  let oldestAt = 0
  let closed = false
  const offers: Array<{
    readonly items: ReadonlyArray<A>
    readonly wanted: () => boolean
    readonly resolve: (admitted: boolean) => void
    readonly reject: (error: Error) => void
  }> = []
  /** The taker waiting for items, called on each arrival. */
  let taker: (() => void) | undefined

  const append = (more: ReadonlyArray<A>) => {
    if (items.length === 0) oldestAt = Date.now()
    for (const item of more) items.push(item)
  }

  const fits = (more: ReadonlyArray<A>) => items.length === 0 || items.length + more.length <= capacity

  /** Lets waiting hand-overs in, oldest first, while they fit; drops those no longer wanted. */
  const admit = () => {
    for (let offer = offers[0]; offer !== undefined; offer = offers[0]) {
      const wanted = offer.wanted()
      if (wanted && !fits(offer.items)) return
      offers.shift()
      if (wanted) append(offer.items)
      offer.resolve(wanted)
    }
  }

  const takeNow = (max: number): ReadonlyArray<A> => {
    if (items.length === 0) return []
    let taken: Array<A>
    if (items.length <= max) {
      taken = items
      items = []
    } else {
      // What stays keeps the age of the oldest: it goes out at the next take instead of lingering again.
      taken = items.slice(0, max)
      items = items.slice(max)
    }
    admit()
    return taken
  }

  const offer = (more: ReadonlyArray<A>, wanted: () => boolean = () => true): Promise<boolean> | undefined => {
    if (closed) return Promise.reject(new HandoverClosed())
    if (offers.length === 0 && fits(more)) {
      append(more)
      taker?.()
      return undefined
    }
    return new Promise<boolean>((resolve, reject) => {
      offers.push({
        items: more,
        wanted,
        resolve: (admitted) => {
          resolve(admitted)
          if (admitted) taker?.()
        },
        reject
      })
    })
  }

  const take = (max: number, linger: number): Effect.Effect<ReadonlyArray<A>> =>
    Effect.async<ReadonlyArray<A>>((resume) => {
      let timer: ReturnType<typeof setTimeout> | undefined
      const check = () => {
        if (items.length === 0) return
        const due = oldestAt + linger - Date.now()
        if (items.length >= max || due <= 0) {
          if (timer !== undefined) clearTimeout(timer)
          taker = undefined
          resume(Effect.succeed(takeNow(max)))
        } else if (timer === undefined) {
          timer = setTimeout(() => {
            timer = undefined
            check()
          }, due)
        }
      }
      taker = check
      check()
      return Effect.sync(() => {
        if (timer !== undefined) clearTimeout(timer)
        if (taker === check) taker = undefined
      })
    })

  const close = () => {
    closed = true
    for (const offer of offers.splice(0)) offer.reject(new HandoverClosed())
  }

  return { offer, take, takeNow, close }
}
