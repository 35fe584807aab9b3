/**
 * Keeping ClickHouse `alerts` whole against PostgreSQL `fraud_alerts`, for the operator (`sentinel
 * outbox`, `sentinel reconcile`): the outbox's state, redelivery of alerts ClickHouse lost, and the
 * comparison of both stores hour by hour.
 *
 * Redelivery never doubles an alert. Under a lock that serialises redeliveries, an alert is queued
 * again only when its outbox row is published (or pruned) — its insert finished — and ClickHouse,
 * asked after that, lacks it; an unpublished row is left to the relay. It is queued under a new
 * outbox id: the relay's insert token derives from the claimed ids, and ClickHouse remembers recent
 * tokens even of rows deleted since, so a claim of the old ids could be dropped as a repeat.
 */
import { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import { Data, Duration, Effect } from "effect"
import { ClickHouse } from "../sinks/clickhouse/ClickHouse.ts"
import { classify as classifyClickHouseError } from "../sinks/clickhouse/ClickHouseError.ts"
import { outboxPayload } from "../sinks/postgres/AlertWriter.ts"
import { type Classification, postgresWriteError } from "../sinks/postgres/PostgresError.ts"
import { make as makeRelay, type OutboxRelayConfig, type OutboxRelayError } from "./OutboxRelay.ts"

export class ReconciliationError extends Data.TaggedError("ReconciliationError")<{
  readonly store: "postgres" | "clickhouse"
  readonly step: string
  readonly classification: Classification
  readonly message: string
  readonly cause: unknown
}> {}

export interface OutboxState {
  /** Rows not yet published. */
  readonly pending: number
  /** Of those, waiting for a claim. */
  readonly unclaimed: number
  /** Claimed, the lease running: a relay is delivering them. */
  readonly inFlight: number
  /** Claimed, the lease expired: the relay died; the next claim takes them over. */
  readonly expired: number
  readonly oldestPendingAgeSeconds: number | null
  /** Published rows kept until the retention prunes them. */
  readonly published: number
  readonly publishedIds: { readonly first: string; readonly last: string } | null
  readonly oldestPublishedAt: Date | null
}

export interface RedriveOutcome {
  readonly from: string
  readonly to: string
  readonly dryRun: boolean
  /** Published rows of the range, each looked up in ClickHouse. */
  readonly checked: number
  /** Of those, absent from ClickHouse and queued again (in a dry run: that would be). */
  readonly requeued: number
  /** Of those, present in ClickHouse and left alone. */
  readonly alreadyPresent: number
  /** Rows of the range not yet published: the relay delivers them anyway. */
  readonly pending: number
}

export interface HourCount {
  /** Start of the hour of `created_at`, UTC. */
  readonly hour: Date
  readonly postgres: number
  /** Rows, duplicates included. */
  readonly clickhouse: number
}

export interface AlertDifference {
  readonly alertId: string
  readonly transactionId: string
  /** ISO-8601, UTC. */
  readonly createdAt: string
  /** Rows of this alert in ClickHouse. */
  readonly rows: number
}

/** How many alerts differ that way, and the first of them (at most `sampleSize`). */
export interface Differences {
  readonly count: number
  readonly alerts: ReadonlyArray<AlertDifference>
}

export interface ReconcileReport {
  readonly since: Date | null
  readonly until: Date
  readonly postgres: number
  readonly clickhouse: number
  /** Every hour holding an alert on either side. */
  readonly hours: ReadonlyArray<HourCount>
  /** In PostgreSQL, absent from ClickHouse, and not on their way (their outbox row was published or pruned). */
  readonly missing: Differences
  /** In PostgreSQL, not yet in ClickHouse, their outbox row waiting for the relay: in transit, not lost. */
  readonly pending: Differences
  /** In ClickHouse, not in PostgreSQL: reported, never deleted. */
  readonly extra: Differences
  /** In ClickHouse more than once. */
  readonly duplicated: Differences
  /** With repair: the missing alerts queued again and delivered (their outbox row re-queued, or rebuilt). */
  readonly repaired: { readonly requeued: number; readonly rebuilt: number } | null
}

/** Alerts named per list in a report; the counts are always whole. */
export const sampleSize = 1_000

/** Alerts per redelivery statement and per ClickHouse lookup. */
const chunkSize = 1_000

const lockName = "sentinel outbox redelivery"

const hourMs = 3_600_000

const postgresFailure = (step: string) => (error: SqlError) => {
  const { classification, message } = postgresWriteError(error)
  return new ReconciliationError({ store: "postgres", step, classification, message, cause: error })
}

/** `DateTime64` text in UTC, as ClickHouse parses a query parameter. */
const clickhouseTime = (date: Date): string => date.toISOString().slice(0, 23).replace("T", " ")

const chunks = <A>(items: ReadonlyArray<A>): ReadonlyArray<ReadonlyArray<A>> =>
  Array.from({ length: Math.ceil(items.length / chunkSize) }, (_, i) => items.slice(i * chunkSize, (i + 1) * chunkSize))

const stores = Effect.gen(function*() {
  // Column names below are the schema's own; a client configured to rename them must not.
  const sql = (yield* SqlClient.SqlClient).withoutTransforms()
  const clickhouse = yield* ClickHouse

  const query = <A>(step: string, statement: string, params: Record<string, unknown>) =>
    Effect.tryPromise({
      try: async () =>
        (await clickhouse.query({ query: statement, query_params: params, format: "JSONEachRow" })).json<A>(),
      catch: (cause) =>
        new ReconciliationError({
          store: "clickhouse",
          step,
          classification: classifyClickHouseError(cause),
          message: cause instanceof Error ? cause.message : String(cause),
          cause
        })
    })

  /** Which of these transactions' alerts ClickHouse holds (looked up by its sort key). */
  const presentInClickHouse = (transactionIds: ReadonlyArray<string>) =>
    transactionIds.length === 0
      ? Effect.succeed(new Set<string>())
      : query<{ alert_id: string }>(
        "look up alerts",
        `SELECT DISTINCT toString(alert_id) AS alert_id FROM alerts WHERE transaction_id IN {ids:Array(String)}`,
        { ids: transactionIds }
      ).pipe(Effect.map((rows) => new Set(rows.map((row) => row.alert_id))))

  /**
   * Queues again those of `alertIds` that ClickHouse lacks and whose insert is over: a published
   * outbox row moves to a new id, unpublished; a pruned one is rebuilt from `fraud_alerts`. With
   * `dryRun` it only tells.
   */
  const redeliver = (alertIds: ReadonlyArray<string>, dryRun: boolean) =>
    Effect.gen(function*() {
      yield* sql`SELECT pg_advisory_xact_lock(hashtext(${lockName}))`
      const outbox = yield* sql<{ alert_id: string; published: boolean }>`
        SELECT alert_id::text AS alert_id, published_at IS NOT NULL AS published
        FROM outbox WHERE alert_id = ANY(${alertIds}::uuid[])
        FOR UPDATE`
      const alerts = yield* sql<{ alert_id: string; transaction_id: string }>`
        SELECT alert_id::text AS alert_id, transaction_id FROM fraud_alerts WHERE alert_id = ANY(${alertIds}::uuid[])`
      const published = new Map(outbox.map((row) => [row.alert_id, row.published]))
      const done = alerts.filter((alert) => published.get(alert.alert_id) !== false)
      const present = yield* presentInClickHouse(done.map((alert) => alert.transaction_id))
      const absent = done.filter((alert) => !present.has(alert.alert_id)).map((alert) => alert.alert_id)
      const requeue = absent.filter((id) => published.has(id))
      const rebuild = absent.filter((id) => !published.has(id))
      if (!dryRun && requeue.length > 0) {
        yield* sql`
          UPDATE outbox
          SET id = nextval('outbox_id_seq'), created_at = now(), claim_id = NULL, claimed_at = NULL,
              claim_expires_at = NULL, claim_attempts = 0, published_at = NULL
          WHERE alert_id = ANY(${requeue}::uuid[]) AND published_at IS NOT NULL`
      }
      if (!dryRun && rebuild.length > 0) {
        yield* sql`
          INSERT INTO outbox (alert_id, payload)
          SELECT alert_id, ${outboxPayload(sql)} FROM fraud_alerts WHERE alert_id = ANY(${rebuild}::uuid[])
          ON CONFLICT (alert_id) DO NOTHING`
      }
      return {
        requeued: requeue,
        rebuilt: rebuild,
        present: done.length - absent.length,
        pending: alerts.filter((alert) => published.get(alert.alert_id) === false).map((alert) => alert.alert_id)
      }
    }).pipe(
      sql.withTransaction,
      Effect.catchTag("SqlError", (error) => Effect.fail(postgresFailure("redeliver")(error))),
      Effect.withSpan("Reconciliation.redeliver", { attributes: { alerts: alertIds.length, dryRun } })
    )

  return { sql, query, redeliver }
})

/** The outbox as the relay sees it; PostgreSQL only, so it may run beside the daemon. */
export const outboxState: Effect.Effect<OutboxState, ReconciliationError, SqlClient.SqlClient> = Effect.gen(
  function*() {
    const sql = (yield* SqlClient.SqlClient).withoutTransforms()
    const [row] = yield* sql<{
      pending: number
      unclaimed: number
      in_flight: number
      expired: number
      oldest_pending_seconds: number | null
      published: number
      first_published_id: string | null
      last_published_id: string | null
      oldest_published_at: Date | null
    }>`
      SELECT count(*) FILTER (WHERE published_at IS NULL)::int AS pending,
             count(*) FILTER (WHERE published_at IS NULL AND claim_id IS NULL)::int AS unclaimed,
             count(*) FILTER (WHERE published_at IS NULL AND claim_expires_at >= now())::int AS in_flight,
             count(*) FILTER (WHERE published_at IS NULL AND claim_expires_at < now())::int AS expired,
             extract(epoch FROM now() - min(created_at) FILTER (WHERE published_at IS NULL))::float8
               AS oldest_pending_seconds,
             count(*) FILTER (WHERE published_at IS NOT NULL)::int AS published,
             min(id) FILTER (WHERE published_at IS NOT NULL) AS first_published_id,
             max(id) FILTER (WHERE published_at IS NOT NULL) AS last_published_id,
             min(published_at) AS oldest_published_at
      FROM outbox`.pipe(Effect.mapError(postgresFailure("outbox state")))
    return {
      pending: row!.pending,
      unclaimed: row!.unclaimed,
      inFlight: row!.in_flight,
      expired: row!.expired,
      oldestPendingAgeSeconds: row!.oldest_pending_seconds,
      published: row!.published,
      publishedIds: row!.first_published_id === null || row!.last_published_id === null
        ? null
        : { first: row!.first_published_id, last: row!.last_published_id },
      oldestPublishedAt: row!.oldest_published_at
    }
  }
)

/**
 * Re-sends the alerts of the published outbox rows `from`…`to` (ids, inclusive) that ClickHouse
 * lacks, e.g. after a restore lost them: they are queued again for the relay (the daemon's, or
 * `reconcile --repair`'s) to deliver once; the others are left alone.
 */
export const redrive = (
  range: { readonly from: bigint; readonly to: bigint },
  dryRun: boolean
): Effect.Effect<RedriveOutcome, ReconciliationError, SqlClient.SqlClient | ClickHouse> =>
  Effect.gen(function*() {
    const { redeliver, sql } = yield* stores
    // Re-queued rows take ids past the current last one: stopping there keeps them out of this walk.
    const last = yield* sql<{ last: string | null }>`SELECT max(id) AS last FROM outbox`.pipe(
      Effect.map(([row]) => BigInt(row?.last ?? 0)),
      Effect.mapError(postgresFailure("redrive"))
    )
    const to = last < range.to ? last : range.to
    let after = range.from - 1n
    let checked = 0
    let requeued = 0
    let alreadyPresent = 0
    let pending = 0
    while (after < to) {
      const rows = yield* sql<{ id: string; alert_id: string; published: boolean }>`
        SELECT id, alert_id::text AS alert_id, published_at IS NOT NULL AS published
        FROM outbox WHERE id > ${after.toString()} AND id <= ${to.toString()}
        ORDER BY id LIMIT ${chunkSize}`.pipe(Effect.mapError(postgresFailure("redrive")))
      if (rows.length === 0) break
      const outcome = yield* redeliver(rows.filter((row) => row.published).map((row) => row.alert_id), dryRun)
      checked += outcome.present + outcome.requeued.length + outcome.rebuilt.length
      requeued += outcome.requeued.length + outcome.rebuilt.length
      alreadyPresent += outcome.present
      pending += rows.filter((row) => !row.published).length + outcome.pending.length
      after = BigInt(rows[rows.length - 1]!.id)
    }
    return { from: range.from.toString(), to: range.to.toString(), dryRun, checked, requeued, alreadyPresent, pending }
  }).pipe(Effect.withSpan("Reconciliation.redrive"))

interface Tally {
  count: number
  readonly alerts: Array<AlertDifference>
}

const tally = (): Tally => ({ count: 0, alerts: [] })

const note = (into: Tally, alerts: ReadonlyArray<AlertDifference>) => {
  into.count += alerts.length
  into.alerts.push(...alerts.slice(0, Math.max(0, sampleSize - into.alerts.length)))
}

/**
 * Compares `fraud_alerts` with ClickHouse `alerts` over [since, until) of `created_at`: counts per
 * hour, then the ids of each hour (one hour in memory at a time). `created_at` is on both sides with
 * the same value (the outbox payload carries it to the microsecond) and is Sentinel's own clock, so a
 * window names when alerts were made; `transaction_time` is the detector's zone-less local time.
 * With `repair`, the missing alerts are queued again and relayed here, each landing once.
 */
export const reconcile = (options: {
  readonly since: Date | undefined
  readonly until: Date
  readonly repair: boolean
  /** The relay that delivers repairs, configured as the daemon's. */
  readonly relay: OutboxRelayConfig
}): Effect.Effect<ReconcileReport, ReconciliationError | OutboxRelayError, SqlClient.SqlClient | ClickHouse> =>
  Effect.gen(function*() {
    const { query, redeliver, sql } = yield* stores
    const since = options.since ?? new Date(0)
    const { until } = options

    const [postgresHours, clickhouseHours] = yield* Effect.all([
      sql<{ hour: string; n: number }>`
        SELECT (floor(extract(epoch FROM created_at) / 3600) * 3600)::bigint AS hour, count(*)::int AS n
        FROM fraud_alerts WHERE created_at >= ${since} AND created_at < ${until}
        GROUP BY 1`.pipe(Effect.mapError(postgresFailure("count per hour"))),
      query<{ hour: string | number; n: string | number }>(
        "count per hour",
        `SELECT intDiv(toUnixTimestamp(created_at), 3600) * 3600 AS hour, count() AS n FROM alerts
         WHERE created_at >= {since:DateTime64(6, 'UTC')} AND created_at < {until:DateTime64(6, 'UTC')}
         GROUP BY hour`,
        { since: clickhouseTime(since), until: clickhouseTime(until) }
      )
    ])
    const hours = new Map<number, { postgres: number; clickhouse: number }>()
    const hourOf = (seconds: string | number) => {
      const key = Number(seconds) * 1000
      const counts = hours.get(key) ?? { postgres: 0, clickhouse: 0 }
      hours.set(key, counts)
      return counts
    }
    for (const row of postgresHours) hourOf(row.hour).postgres += row.n
    for (const row of clickhouseHours) hourOf(row.hour).clickhouse += Number(row.n)

    const missing = tally()
    const pending = tally()
    const extra = tally()
    const duplicated = tally()
    const repairedIds: Array<string> = []
    let rebuilt = 0
    for (const start of [...hours.keys()].sort((a, b) => a - b)) {
      const from = new Date(Math.max(start, since.getTime()))
      const to = new Date(Math.min(start + hourMs, until.getTime()))
      // ClickHouse first: an alert relayed between the two reads then looks missing, and the lookup
      // in `redeliver` (made after its outbox row was seen published) finds it there.
      // Aliases differ from the columns: ClickHouse would otherwise read `created_at` in WHERE as the alias.
      const inClickHouse = yield* query<{ id: string; transaction: string; created: string; copies: string }>(
        "alerts of an hour",
        `SELECT toString(a.alert_id) AS id, any(a.transaction_id) AS transaction, toString(min(a.created_at)) AS created,
                count() AS copies
         FROM alerts AS a
         WHERE a.created_at >= {from:DateTime64(6, 'UTC')} AND a.created_at < {to:DateTime64(6, 'UTC')}
         GROUP BY a.alert_id`,
        { from: clickhouseTime(from), to: clickhouseTime(to) }
      ).pipe(
        Effect.map((rows) =>
          rows.map((row) => ({
            alert_id: row.id,
            transaction_id: row.transaction,
            created_at: `${row.created.replace(" ", "T")}Z`,
            rows: row.copies
          }))
        )
      )
      const inPostgres = yield* sql<{ alert_id: string; transaction_id: string; created_at: Date }>`
        SELECT alert_id::text AS alert_id, transaction_id, created_at FROM fraud_alerts
        WHERE created_at >= ${from} AND created_at < ${to}`.pipe(Effect.mapError(postgresFailure("alerts of an hour")))

      const clickhouseRows = new Map(inClickHouse.map((row) => [row.alert_id, row]))
      const postgresIds = new Set(inPostgres.map((row) => row.alert_id))
      const differences = (rows: ReadonlyArray<{ alert_id: string; transaction_id: string; created_at: string }>) =>
        rows.map((row): AlertDifference => ({
          alertId: row.alert_id,
          transactionId: row.transaction_id,
          createdAt: row.created_at,
          rows: Number(clickhouseRows.get(row.alert_id)?.rows ?? 0)
        }))
      note(extra, differences(inClickHouse.filter((row) => !postgresIds.has(row.alert_id))))
      note(duplicated, differences(inClickHouse.filter((row) => Number(row.rows) > 1)))

      const absent = inPostgres
        .filter((row) => !clickhouseRows.has(row.alert_id))
        .map((row) => ({ ...row, created_at: row.created_at.toISOString() }))
      const byId = new Map(absent.map((row) => [row.alert_id, row]))
      for (const chunk of chunks(absent.map((row) => row.alert_id))) {
        const outcome = yield* redeliver(chunk, !options.repair)
        const lost = [...outcome.requeued, ...outcome.rebuilt]
        note(missing, differences(lost.map((id) => byId.get(id)!)))
        note(pending, differences(outcome.pending.map((id) => byId.get(id)!)))
        if (options.repair) {
          repairedIds.push(...lost)
          rebuilt += outcome.rebuilt.length
        }
      }
    }

    if (repairedIds.length > 0) yield* deliver(repairedIds, options.relay)
    return {
      since: options.since ?? null,
      until,
      postgres: postgresHours.reduce((sum, row) => sum + row.n, 0),
      clickhouse: clickhouseHours.reduce((sum, row) => sum + Number(row.n), 0),
      hours: [...hours].sort(([a], [b]) => a - b).map(([hour, counts]) => ({ hour: new Date(hour), ...counts })),
      missing,
      pending,
      extra,
      duplicated,
      repaired: options.repair ? { requeued: repairedIds.length - rebuilt, rebuilt } : null
    }
  }).pipe(Effect.withSpan("Reconciliation.reconcile"))

/**
 * Relays until the outbox rows of `alertIds` are published, by this process's relay or by any other
 * running beside it (claims are disjoint; an expired claim is taken over whole). Gives up after the
 * lease and a minute more.
 */
const deliver = (alertIds: ReadonlyArray<string>, config: OutboxRelayConfig) =>
  Effect.gen(function*() {
    const sql = (yield* SqlClient.SqlClient).withoutTransforms()
    const relay = yield* makeRelay(config)
    const waiting = sql<{ n: number }>`
      SELECT count(*)::int AS n FROM outbox WHERE alert_id = ANY(${alertIds}::uuid[]) AND published_at IS NULL`.pipe(
      Effect.map(([row]) => row?.n ?? 0),
      Effect.mapError(postgresFailure("wait for the relay"))
    )
    const lease = Duration.decode(config.leaseDuration ?? "30 seconds")
    yield* Effect.gen(function*() {
      while ((yield* waiting) > 0) {
        if ((yield* relay.relayOnce) === 0) yield* Effect.sleep(config.pollInterval ?? "250 millis")
      }
    }).pipe(
      Effect.timeoutFail({
        duration: Duration.sum(lease, Duration.minutes(1)),
        onTimeout: () =>
          new ReconciliationError({
            store: "postgres",
            step: "wait for the relay",
            classification: "transient",
            message: "the re-queued alerts were not relayed in time; they stay queued for the daemon's relay",
            cause: undefined
          })
      })
    )
  }).pipe(Effect.withSpan("Reconciliation.deliver", { attributes: { alerts: alertIds.length } }))
