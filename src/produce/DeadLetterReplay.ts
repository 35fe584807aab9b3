/**
 * `sentinel dlq replay`: re-publishes dead letters, once their cause is fixed, to the topics they came
 * from, so each flows through both paths exactly like a new record (every write is idempotent, so
 * whatever of it was stored already is not stored twice). Each keeps its key, value and headers, plus
 * `x-sentinel-replay-of: <dead letter id>`, and is marked replayed once the broker acknowledged it. A
 * record that fails again becomes a new dead letter (it has a new offset).
 */
import { Effect } from "effect"
import { CompressionTypes, type Message } from "kafkajs"
import type { SentinelSettings } from "../config/Config.ts"
import {
  type DeadLetter,
  type DeadLetterFilter,
  DeadLetterStore,
  type DeadLetterStoreError
} from "../sinks/postgres/DeadLetterStore.ts"
import { kafkaClient, KafkaError } from "../source/KafkaSource.ts"
import { idempotentProducer } from "./Producer.ts"

export const replayHeader = "x-sentinel-replay-of"

export interface ReplayOptions {
  readonly ids?: ReadonlyArray<string> | undefined
  readonly kind?: string | undefined
  readonly since?: Date | undefined
  /** Re-publish letters replayed before too. */
  readonly again: boolean
  /** Select and count, publish nothing, mark nothing. */
  readonly dryRun: boolean
}

export interface ReplaySummary {
  readonly dryRun: boolean
  /** Letters re-published and marked (in a dry run: that would be). */
  readonly replayed: number
  /** Their ids, oldest first. */
  readonly ids: ReadonlyArray<string>
  readonly byTopic: Readonly<Record<string, number>>
  /** Letters that matched but were replayed before, left alone without `again`. */
  readonly alreadyReplayed: number
  /** Ids asked for that name no dead letter. */
  readonly unknownIds: ReadonlyArray<string>
}

/** Letters re-published per broker round trip (and per mark). */
const pageSize = 500

const messageOf = (letter: DeadLetter): Message => ({
  key: letter.key,
  value: letter.value,
  headers: { ...letter.headers, [replayHeader]: letter.id }
})

/** Sends letters to their topics and waits for every in-sync replica; idempotent, like `sentinel produce`. */
const publisher = (kafka: SentinelSettings["kafka"]) =>
  Effect.map(
    Effect.acquireRelease(
      Effect.tryPromise({
        try: async () => {
          const producer = idempotentProducer(kafkaClient(kafka))
          await producer.connect()
          return producer
        },
        catch: (cause) => new KafkaError({ operation: "connect producer", cause })
      }),
      (producer) => Effect.promise(() => producer.disconnect())
    ),
    (producer) => (letters: ReadonlyArray<DeadLetter>) =>
      Effect.tryPromise({
        try: () => {
          const byTopic = new Map<string, Array<Message>>()
          for (const letter of letters) {
            const messages = byTopic.get(letter.source.topic) ?? []
            messages.push(messageOf(letter))
            byTopic.set(letter.source.topic, messages)
          }
          return producer.sendBatch({
            acks: -1,
            compression: CompressionTypes.None,
            topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages }))
          })
        },
        catch: (cause) => new KafkaError({ operation: "replay dead letters", cause })
      })
  )

export const replayDeadLetters = (
  kafka: SentinelSettings["kafka"],
  options: ReplayOptions
): Effect.Effect<ReplaySummary, KafkaError | DeadLetterStoreError, DeadLetterStore> =>
  Effect.gen(function*() {
    const store = yield* DeadLetterStore
    const filter: DeadLetterFilter = { ids: options.ids, kind: options.kind, since: options.since }
    const known = options.ids === undefined
      ? []
      : yield* store.select({ ids: options.ids }, { order: "oldest", limit: options.ids.length })
    const unknownIds = (options.ids ?? []).filter((id) => !known.some((letter) => letter.id === id))
    const alreadyReplayed = options.again ? 0 : yield* store.count({ ...filter, replayed: true })
    const eligible: DeadLetterFilter = options.again ? filter : { ...filter, replayed: false }
    const publish = options.dryRun ? undefined : yield* publisher(kafka)

    const ids: Array<string> = []
    const byTopic: Record<string, number> = {}
    // Keyset pages in id order: marking a page never moves the next one.
    let after: string | undefined
    for (;;) {
      const page = yield* store.select(eligible, { order: "oldest", after, limit: pageSize })
      if (page.length === 0) break
      if (publish !== undefined) {
        yield* publish(page)
        yield* store.markReplayed(page.map((letter) => letter.id))
      }
      for (const letter of page) {
        ids.push(letter.id)
        byTopic[letter.source.topic] = (byTopic[letter.source.topic] ?? 0) + 1
      }
      after = page[page.length - 1]!.id
    }
    return { dryRun: options.dryRun, replayed: ids.length, ids, byTopic, alreadyReplayed, unknownIds }
  }).pipe(Effect.scoped, Effect.withSpan("DeadLetterReplay.replay"))
