/**
 * Dead letters as the operator sees them (`sentinel dlq`): selected, shown whole, and marked once
 * re-published. The AlertWriter writes them; nothing here changes a letter's record or its reason.
 */
import { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import { Context, Data, Effect, Layer } from "effect"
import { type Classification, postgresWriteError } from "./PostgresError.ts"

export interface DeadLetter {
  /** bigserial, kept as a decimal string. */
  readonly id: string
  readonly source: {
    readonly topic: string
    readonly partition: number
    /** A decimal string, like every Kafka offset in Sentinel. */
    readonly offset: string
    readonly timestamp: Date
  }
  readonly key: string | null
  readonly headers: Readonly<Record<string, string>>
  /** The record's bytes exactly as they arrived. */
  readonly value: Buffer | null
  readonly errorKind: string
  readonly errorMessage: string
  readonly receivedAt: Date
  /** When `sentinel dlq replay` last re-published it. */
  readonly replayedAt: Date | null
  readonly replayCount: number
}

/** Which dead letters; every criterion given must hold. */
export interface DeadLetterFilter {
  readonly ids?: ReadonlyArray<string> | undefined
  readonly kind?: string | undefined
  readonly topic?: string | undefined
  /** Received at or after. */
  readonly since?: Date | undefined
  /** true: only those replayed already; false: only those never replayed; undefined: both. */
  readonly replayed?: boolean | undefined
}

/** One page in id order: `newest` descending, `oldest` ascending; `after` is the last id of the previous page. */
export interface DeadLetterPage {
  readonly order: "newest" | "oldest"
  readonly after?: string | undefined
  readonly limit: number
}

export class DeadLetterStoreError extends Data.TaggedError("DeadLetterStoreError")<{
  readonly operation: "select" | "count" | "mark replayed"
  readonly classification: Classification
  readonly message: string
  readonly cause: unknown
}> {}

export interface DeadLetterStoreService {
  readonly select: (
    filter: DeadLetterFilter,
    page: DeadLetterPage
  ) => Effect.Effect<ReadonlyArray<DeadLetter>, DeadLetterStoreError>
  readonly count: (filter: DeadLetterFilter) => Effect.Effect<number, DeadLetterStoreError>
  /** Stamps `replayed_at` and counts one more replay; the number of letters marked. */
  readonly markReplayed: (ids: ReadonlyArray<string>) => Effect.Effect<number, DeadLetterStoreError>
}

export class DeadLetterStore extends Context.Tag("sentinel/DeadLetterStore")<
  DeadLetterStore,
  DeadLetterStoreService
>() {}

interface DeadLetterRow {
  readonly id: string
  readonly source_topic: string
  readonly source_partition: number
  readonly source_offset: string
  readonly source_timestamp: Date
  readonly key: string | null
  readonly headers: Record<string, string>
  readonly value: Buffer | null
  readonly error_kind: string
  readonly error_message: string
  readonly received_at: Date
  readonly replayed_at: Date | null
  readonly replay_count: number
}

const fromRow = (row: DeadLetterRow): DeadLetter => ({
  id: row.id,
  source: {
    topic: row.source_topic,
    partition: row.source_partition,
    offset: row.source_offset,
    timestamp: row.source_timestamp
  },
  key: row.key,
  headers: row.headers,
  value: row.value,
  errorKind: row.error_kind,
  errorMessage: row.error_message,
  receivedAt: row.received_at,
  replayedAt: row.replayed_at,
  replayCount: row.replay_count
})

const failure = (operation: DeadLetterStoreError["operation"]) => (error: SqlError) => {
  const { classification, message } = postgresWriteError(error)
  return new DeadLetterStoreError({ operation, classification, message, cause: error })
}

export const make: Effect.Effect<DeadLetterStoreService, never, SqlClient.SqlClient> = Effect.gen(function*() {
  // Column names below are the schema's own; a client configured to rename them must not.
  const sql = (yield* SqlClient.SqlClient).withoutTransforms()

  const where = (filter: DeadLetterFilter) =>
    sql.and([
      ...(filter.ids === undefined ? [] : [sql`id = ANY(${filter.ids}::bigint[])`]),
      ...(filter.kind === undefined ? [] : [sql`error_kind = ${filter.kind}`]),
      ...(filter.topic === undefined ? [] : [sql`source_topic = ${filter.topic}`]),
      ...(filter.since === undefined ? [] : [sql`received_at >= ${filter.since}`]),
      ...(filter.replayed === undefined
        ? []
        : [filter.replayed ? sql`replayed_at IS NOT NULL` : sql`replayed_at IS NULL`])
    ])

  const select = (filter: DeadLetterFilter, page: DeadLetterPage) => {
    const after = page.after === undefined
      ? sql`TRUE`
      : page.order === "newest"
      ? sql`id < ${page.after}`
      : sql`id > ${page.after}`
    return sql<DeadLetterRow>`
      SELECT id, source_topic, source_partition, source_offset, source_timestamp, key, headers, value,
             error_kind, error_message, received_at, replayed_at, replay_count
      FROM dead_letters
      WHERE ${where(filter)} AND ${after}
      ORDER BY ${page.order === "newest" ? sql`id DESC` : sql`id`}
      LIMIT ${page.limit}`.pipe(
      Effect.map((rows) => rows.map(fromRow)),
      Effect.mapError(failure("select")),
      Effect.withSpan("DeadLetterStore.select")
    )
  }

  const count = (filter: DeadLetterFilter) =>
    sql<{ n: number }>`SELECT count(*)::int AS n FROM dead_letters WHERE ${where(filter)}`.pipe(
      Effect.map(([row]) => row?.n ?? 0),
      Effect.mapError(failure("count"))
    )

  const markReplayed = (ids: ReadonlyArray<string>) =>
    sql<{ n: number }>`
      WITH marked AS (
        UPDATE dead_letters SET replayed_at = now(), replay_count = replay_count + 1
        WHERE id = ANY(${ids}::bigint[])
        RETURNING 1
      )
      SELECT count(*)::int AS n FROM marked`.pipe(
      Effect.map(([row]) => row?.n ?? 0),
      Effect.mapError(failure("mark replayed")),
      Effect.withSpan("DeadLetterStore.markReplayed", { attributes: { deadLetters: ids.length } })
    )

  return { select, count, markReplayed }
})

export const layer: Layer.Layer<DeadLetterStore, never, SqlClient.SqlClient> = Layer.effect(DeadLetterStore, make)
