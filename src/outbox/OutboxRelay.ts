/**
 * Copies alerts from the PostgreSQL outbox into ClickHouse `alerts`, exactly once.
 *
 * A claim stamps a new `claim_id` on up to `batchSize` pending rows in one statement (`FOR UPDATE
 * SKIP LOCKED`, in id order), so concurrent relays take disjoint work. The rows are inserted with an
 * `insert_deduplication_token` computed from their ids alone, and marked published only after the
 * insert succeeded. A relay that dies in between leaves its claim to expire; a relay that looks for
 * expired claims takes it over whole — same rows, same token — so ClickHouse drops the repeated insert
 * if the first one had landed. The rows of an expired claim keep its claim_id, so no other claim can
 * take them meanwhile.
 *
 * `run` keeps several claims in flight (`concurrency`), each claimed, delivered and acknowledged on its
 * own: while one claim's rows go into ClickHouse, the next is claimed or acknowledged in PostgreSQL.
 * Claims are disjoint, so this is the same as that many relays side by side.
 */
import { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import { Clock, Context, Data, Deferred, Duration, Effect, Layer, Metric, Option, Ref } from "effect"
import { createHash } from "node:crypto"
import { Readable } from "node:stream"
import type { CircuitBreaker, CircuitOpenError } from "../resilience/CircuitBreaker.ts"
import { type RetryPolicy, retryTransient } from "../resilience/RetryPolicy.ts"
import { ClickHouse } from "../sinks/clickhouse/ClickHouse.ts"
import { classify as classifyClickHouseError } from "../sinks/clickhouse/ClickHouseError.ts"
import * as Pseudonymisation from "../sinks/clickhouse/Pseudonymisation.ts"
import { type Classification, classifyPostgresError } from "../sinks/postgres/PostgresError.ts"
import * as Metrics from "../telemetry/Metrics.ts"
import { linksTo, parseTraceparent } from "../telemetry/TraceContext.ts"
import { withClickHouseInsertSpan } from "../telemetry/Tracing.ts"

export interface OutboxRow {
  /** bigserial, kept as a decimal string. */
  readonly id: string
  /** The alert's user id as PostgreSQL keeps it (raw, never pseudonymised). */
  readonly user_id: string
  /**
   * The rest of the ClickHouse `alerts` row — less user_id, outbox_id, trace_id and relayed_at — as JSON
   * text: the relay passes it on as it comes, without parsing it.
   */
  readonly payload: string
  readonly traceparent: string | null
}

export interface OutboxClaim {
  readonly claimId: string
  /** In id order. */
  readonly rows: ReadonlyArray<OutboxRow>
  /** Depends only on the claimed rows, so every attempt at this claim carries the same token. */
  readonly token: string
}

export interface OutboxBacklog {
  /** Rows not yet published. */
  readonly pending: number
  /** Age of the oldest of them. */
  readonly oldest: Option.Option<Duration.Duration>
}

export class OutboxRelayError extends Data.TaggedError("OutboxRelayError")<{
  readonly step: "claim" | "deliver" | "acknowledge" | "prune" | "backlog"
  readonly classification: Classification
  readonly message: string
  readonly cause: unknown
}> {}

export interface OutboxRelayService {
  /** Takes over the oldest expired claim, or else claims new rows; none when there is nothing to relay. */
  readonly claim: Effect.Effect<Option.Option<OutboxClaim>, OutboxRelayError>
  /** Inserts the claim's rows into ClickHouse `alerts`; a repeat of the same claim is dropped there. */
  readonly deliver: (claim: OutboxClaim) => Effect.Effect<void, OutboxRelayError>
  /** Marks the claim's rows published. */
  readonly acknowledge: (claim: OutboxClaim) => Effect.Effect<void, OutboxRelayError>
  /** claim → deliver → acknowledge; the number of rows relayed. */
  readonly relayOnce: Effect.Effect<number, OutboxRelayError>
  /**
   * Relays until `stop` completes, retrying transient failures with backoff and pruning now and then;
   * a claim in flight when `stop` completes is finished first. Inserts pass through `breaker` (the
   * ClickHouse one the analytics path uses, when given). Fails on a permanent failure, or once
   * retries are exhausted.
   */
  readonly run: (
    stop: Deferred.Deferred<void>,
    breaker?: CircuitBreaker
  ) => Effect.Effect<void, OutboxRelayError | CircuitOpenError>
  /** Deletes rows published longer than `retention` ago; the number deleted. */
  readonly prune: Effect.Effect<number, OutboxRelayError>
  readonly backlog: Effect.Effect<OutboxBacklog, OutboxRelayError>
}

export class OutboxRelay extends Context.Tag("sentinel/OutboxRelay")<OutboxRelay, OutboxRelayService>() {}

export interface OutboxRelayConfig {
  /** Rows per claim, i.e. per ClickHouse insert. Default 5,000. */
  readonly batchSize?: number
  /**
   * Claims `run` keeps in flight at once. Default 2: one is claimed or acknowledged in PostgreSQL while
   * the other goes into ClickHouse (on 2 cores, 4 and 8 were slower and cost PostgreSQL more CPU).
   */
  readonly concurrency?: number
  /** Wait before looking again after a claim that was not full. Default 250 ms. */
  readonly pollInterval?: Duration.DurationInput
  /** How long a claim is its relay's alone; must comfortably exceed one insert. Default 30 s. */
  readonly leaseDuration?: Duration.DurationInput
  /** How long published rows are kept. Default 24 h. */
  readonly retention?: Duration.DurationInput
  /** How often `run` prunes. Default 1 min. */
  readonly pruneInterval?: Duration.DurationInput
  /** Retries of transient failures in `run`. Default: from 100 ms, doubling to 10 s, for 5 min. */
  readonly retry?: RetryPolicy
  /** What user ids become in ClickHouse (SENTINEL_PSEUDONYMISE_KEY); the outbox keeps them raw. Default: themselves. */
  readonly pseudonymisation?: Pseudonymisation.Pseudonymisation
}

/** The trace id of a W3C `traceparent`, or "" without one. */
const traceIdOf = (traceparent: string | null): string => parseTraceparent(traceparent)?.traceId ?? ""

const postgresFailure = (step: OutboxRelayError["step"]) => (error: SqlError): OutboxRelayError => {
  const cause: { readonly code?: unknown; readonly errno?: unknown } =
    typeof error.cause === "object" && error.cause !== null ? error.cause : {}
  return new OutboxRelayError({
    step,
    classification: classifyPostgresError(cause),
    message: error.cause instanceof Error ? error.cause.message : error.message,
    cause: error
  })
}

const isTransient = (error: OutboxRelayError): boolean => error.classification === "transient"

const defaultRetry: RetryPolicy = {
  initialDelay: "100 millis",
  maxDelay: "10 seconds",
  maxElapsed: "5 minutes",
  factor: 2
}

export const make = (
  config: OutboxRelayConfig = {}
): Effect.Effect<OutboxRelayService, never, SqlClient.SqlClient | ClickHouse> =>
  Effect.gen(function*() {
    // Column names below are the schema's own; a client configured to rename them must not.
    const sql = (yield* SqlClient.SqlClient).withoutTransforms()
    const clickhouse = yield* ClickHouse
    const { userId } = config.pseudonymisation ?? Pseudonymisation.none
    const batchSize = config.batchSize ?? 5_000
    const concurrency = config.concurrency ?? 2
    const pollInterval = Duration.decode(config.pollInterval ?? "250 millis")
    const leaseSeconds = Duration.toSeconds(config.leaseDuration ?? "30 seconds")
    const retentionSeconds = Duration.toSeconds(config.retention ?? "24 hours")
    const pruneInterval = Duration.decode(config.pruneInterval ?? "1 minute")

    type Claimed = OutboxRow & { readonly claim_id: string }

    // The payload as text, without its user id: the driver would parse jsonb into objects, and the
    // relay serialise them again, for rows that only pass through.
    const claimedColumns = sql.literal(
      "o.id, o.claim_id, o.payload ->> 'user_id' AS user_id, (o.payload - 'user_id')::text AS payload, o.traceparent"
    )

    // Only the claim's first row is eligible, and it is locked: two relays can never split one claim.
    // Claims in flight have no index of their own (migrations/0007): the expired claim is found along the
    // pending rows, and its rows from its first one on.
    const takeOverExpired = sql<Claimed>`
      WITH expired AS (
        SELECT o.id, o.claim_id
        FROM outbox o
        WHERE o.published_at IS NULL AND o.claim_id IS NOT NULL AND o.claim_expires_at < now()
          AND NOT EXISTS (
            SELECT 1 FROM outbox p WHERE p.claim_id = o.claim_id AND p.published_at IS NULL AND p.id < o.id)
        ORDER BY o.id
        LIMIT 1
        FOR UPDATE SKIP LOCKED
      )
      UPDATE outbox o
      SET claim_expires_at = now() + make_interval(secs => ${leaseSeconds}), claim_attempts = o.claim_attempts + 1
      FROM expired
      WHERE o.id = ANY (ARRAY(
          SELECT p.id FROM outbox p, expired e
          WHERE p.published_at IS NULL AND p.claim_id = e.claim_id AND p.id >= e.id))
        AND o.claim_id = expired.claim_id AND o.published_at IS NULL
      RETURNING ${claimedColumns}`

    // The picked ids as an array, so that the rows are updated through the primary key: joined with the
    // CTE instead, the planner hash-joins a scan of the whole table, published rows included.
    const claimNew = sql<Claimed>`
      WITH stamp AS (SELECT gen_random_uuid() AS claim_id)
      UPDATE outbox o
      SET claim_id = stamp.claim_id, claimed_at = now(),
          claim_expires_at = now() + make_interval(secs => ${leaseSeconds}), claim_attempts = 1
      FROM stamp
      WHERE o.id = ANY (ARRAY(
        SELECT id FROM outbox
        WHERE published_at IS NULL AND claim_id IS NULL
        ORDER BY id
        LIMIT ${batchSize}
        FOR UPDATE SKIP LOCKED))
      RETURNING ${claimedColumns}`

    const toClaim = (claimed: ReadonlyArray<Claimed>): Option.Option<OutboxClaim> => {
      if (claimed.length === 0) return Option.none()
      const rows = [...claimed].sort((a, b) => (BigInt(a.id) < BigInt(b.id) ? -1 : 1))
      const ids = rows.map((row) => row.id).join(",")
      return Option.some({
        claimId: rows[0]!.claim_id,
        rows: rows.map(({ id, payload, traceparent, user_id }) => ({ id, user_id, payload, traceparent })),
        token: `outbox:${createHash("sha256").update(ids).digest("hex")}`
      })
    }

    // Looking for an expired claim walks the pending rows, so it is done when one may have appeared: first
    // thing, after this relay released a claim, right after a takeover (a relay that died may have left
    // several), and otherwise a lease after the last look. Meanwhile no claim can take an expired claim's
    // rows: they keep its claim_id.
    const expiredLookDue = yield* Ref.make(0)
    const takeOver = takeOverExpired.pipe(
      Effect.tap((taken) =>
        Effect.flatMap(
          Clock.currentTimeMillis,
          (now) => Ref.set(expiredLookDue, taken.length > 0 ? 0 : now + leaseSeconds * 1000)
        )
      )
    )

    const claim = Effect.gen(function*() {
      const due = (yield* Clock.currentTimeMillis) >= (yield* Ref.get(expiredLookDue))
      const expired = due ? yield* takeOver : []
      return expired.length > 0 ? expired : yield* claimNew
    }).pipe(
      Effect.map(toClaim),
      Effect.mapError(postgresFailure("claim")),
      Effect.withSpan("OutboxRelay.claim")
    )

    const deliver = (claim: OutboxClaim) =>
      Effect.tryPromise({
        try: async () => {
          // The payload object with the relay's columns put in front ({"user_id":…, …, rest of the payload}).
          const body = claim.rows
            .map((row) =>
              `{"user_id":${JSON.stringify(userId(row.user_id))},"outbox_id":${row.id},"trace_id":"${
                traceIdOf(row.traceparent)
              }",${row.payload.slice(1)}`
            )
            .join("\n")
          // The token goes into the statement, not into clickhouse_settings: through chdb/connection a
          // setting is SET on the shared session and would stick to the next insert of anyone in the
          // process. It is "outbox:" and hex digits, nothing from the data.
          const result = await clickhouse.exec({
            query: `INSERT INTO alerts SETTINGS insert_deduplicate = 1, insert_deduplication_token = '${claim.token}'
                    FORMAT JSONEachRow`,
            values: Readable.from([body])
          })
          result.stream.destroy()
        },
        catch: (cause) =>
          new OutboxRelayError({
            step: "deliver",
            classification: classifyClickHouseError(cause),
            message: cause instanceof Error ? cause.message : String(cause),
            cause
          })
      }).pipe(withClickHouseInsertSpan("alerts", claim.rows.length))

    /** The claim's pending rows, through the primary key: they all lie between its first id and its last. */
    const claimRows = (claim: OutboxClaim) =>
      sql`id BETWEEN ${claim.rows[0]!.id}::bigint AND ${claim.rows[claim.rows.length - 1]!.id}::bigint
          AND claim_id = ${claim.claimId} AND published_at IS NULL`

    const acknowledge = (claim: OutboxClaim) =>
      sql`UPDATE outbox SET published_at = now() WHERE ${claimRows(claim)}`.pipe(
        Effect.asVoid,
        Effect.mapError(postgresFailure("acknowledge")),
        Effect.withSpan("OutboxRelay.acknowledge")
      )

    // After a failed insert the claim is offered again at once (to this relay's next claim, or to any
    // other's next look) instead of waiting out its lease; it is re-sent whole with the same token either way.
    const release = (claim: OutboxClaim) =>
      sql`UPDATE outbox SET claim_expires_at = now() WHERE ${claimRows(claim)}`.pipe(
        Effect.zipRight(Ref.set(expiredLookDue, 0)),
        Effect.ignore
      )

    /**
     * A claim's own trace, linked to the batches whose transactions wrote its rows (their
     * `traceparent`), so an alert can be followed from its batch to ClickHouse.
     */
    const relaySpan = (claimed: OutboxClaim) => {
      const batches = linksTo(claimed.rows, (row) => row.traceparent, (_, rows) => ({ "sentinel.outbox.rows": rows }))
      return Effect.withSpan("sentinel.outbox.relay", {
        root: true,
        links: batches.links,
        attributes: {
          "sentinel.outbox.rows": claimed.rows.length,
          "sentinel.outbox.claim_id": claimed.claimId,
          "sentinel.links.dropped": batches.dropped
        }
      })
    }

    const relayThrough = <E>(
      protect: (insert: Effect.Effect<void, OutboxRelayError>) => Effect.Effect<void, OutboxRelayError | E>
    ) =>
      // Untraced: the relay polls, and most polls find nothing; a claim with rows gets a trace.
      claim.pipe(
        Effect.withTracerEnabled(false),
        Effect.flatMap(Option.match({
          onNone: () => Effect.succeed(0),
          onSome: (claimed) =>
            protect(deliver(claimed)).pipe(
              Effect.tapError(() => release(claimed)),
              Effect.zipRight(acknowledge(claimed)),
              Effect.tap(() => Metric.incrementBy(Metrics.outboxRelayed, claimed.rows.length)),
              Effect.as(claimed.rows.length),
              relaySpan(claimed)
            )
        }))
      )
    const relayOnce = relayThrough<never>((insert) => insert)

    const prune = sql<{ deleted: number }>`
      WITH deleted AS (
        DELETE FROM outbox
        WHERE published_at < now() - make_interval(secs => ${retentionSeconds})
        RETURNING 1
      )
      SELECT count(*)::int AS deleted FROM deleted`.pipe(
      Effect.map((rows) => rows[0]!.deleted),
      Effect.mapError(postgresFailure("prune")),
      Effect.withSpan("OutboxRelay.prune")
    )

    const backlog = sql<{ pending: number; oldest_ms: number | null }>`
      SELECT count(*)::int AS pending,
             (extract(epoch FROM now() - min(created_at)) * 1000)::float8 AS oldest_ms
      FROM outbox
      WHERE published_at IS NULL`.pipe(
      Effect.map(([row]) => ({
        pending: row!.pending,
        oldest: Option.map(Option.fromNullable(row!.oldest_ms), Duration.millis)
      })),
      Effect.mapError(postgresFailure("backlog"))
    )

    const retry = retryTransient<OutboxRelayError>("outbox", isTransient, config.retry ?? defaultRetry)

    const run = (stop: Deferred.Deferred<void>, breaker?: CircuitBreaker) => {
      const relayLoop = retry(breaker === undefined ? relayOnce : relayThrough(breaker.protect)).pipe(
        // A full claim means more is waiting: go straight on.
        Effect.flatMap((moved) =>
          moved < batchSize ? Effect.raceFirst(Effect.sleep(pollInterval), Deferred.await(stop)) : Effect.void
        ),
        Effect.zipRight(Deferred.isDone(stop)),
        Effect.repeat({ until: (stopped) => stopped })
      )
      const pruneLoop = retry(prune).pipe(Effect.zipRight(Effect.sleep(pruneInterval)), Effect.forever)
      return Effect.all(
        [...Array.from({ length: concurrency }, () => relayLoop), Effect.raceFirst(pruneLoop, Deferred.await(stop))],
        { concurrency: "unbounded", discard: true }
      )
    }

    return { claim, deliver, acknowledge, relayOnce, run, prune, backlog }
  })

export const layer = (
  config: OutboxRelayConfig = {}
): Layer.Layer<OutboxRelay, never, SqlClient.SqlClient | ClickHouse> => Layer.effect(OutboxRelay, make(config))
