import type { ClickHouseClient } from "@clickhouse/client"
import { SqlClient } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { Context, Deferred, Duration, Effect, Fiber, Layer, Option, Redacted, Schedule, type Scope } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import {
  layer as relayLayer,
  make as makeRelay,
  OutboxRelay,
  type OutboxRelayConfig
} from "../../src/outbox/OutboxRelay.ts"
import { ClickHouse, makeClient } from "../../src/sinks/clickhouse/ClickHouse.ts"
import { migrateClickHouse } from "../../src/sinks/clickhouse/Migrations.ts"
import { alertIdOf } from "../../src/sinks/postgres/AlertId.ts"
import { AlertWriter, layer as writerLayer } from "../../src/sinks/postgres/AlertWriter.ts"
import { migratePostgres } from "../../src/sinks/postgres/Migrations.ts"
import { connectAs } from "../../src/sinks/postgres/WriterRole.ts"
import { writeAlerts } from "../support/alerts.ts"
import { freshClickHousePath, freshDatabase, uniqueName } from "../support/services.ts"

// chDB allows one data folder per process: one client for the whole file, a ClickHouse database per test.
let clickhouse: ClickHouseClient
beforeAll(() => {
  clickhouse = makeClient({ _tag: "Embedded", path: freshClickHousePath() })
})
afterAll(() => clickhouse.close())

const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

const queryClickHouse = <A>(query: string) =>
  Effect.promise(async () => (await clickhouse.query({ query, format: "JSONEachRow" })).json<A>())

/** What ClickHouse holds: rows without FINAL, distinct alerts, and the outbox ids seen. */
const alertsInClickHouse = queryClickHouse<
  { rows: string; alerts: string; ids: string; lowest: string; highest: string }
>(
  `SELECT count() AS rows, uniqExact(alert_id) AS alerts, uniqExact(outbox_id) AS ids,
          min(outbox_id) AS lowest, max(outbox_id) AS highest FROM alerts`
).pipe(Effect.map(([row]) => Object.fromEntries(Object.entries(row!).map(([k, v]) => [k, Number(v)]))))

/** Polls `condition` until it holds (a minute at most). */
const until = <E, R>(condition: Effect.Effect<boolean, E, R>) =>
  condition.pipe(
    Effect.repeat({ until: (done) => done, schedule: Schedule.spaced("50 millis") }),
    Effect.timeoutFail({ duration: "60 seconds", onTimeout: () => new Error("condition never held") }),
    Effect.orDie
  )

/**
 * A fresh PostgreSQL database (migrated) and a fresh ClickHouse database (migrated, made current),
 * with the writer and a relay of `config` running as the daemon's role; the owner's SqlClient for checks.
 */
const withStores = (
  config: OutboxRelayConfig,
  test: (
    owner: SqlClient.SqlClient
  ) => Effect.Effect<void, unknown, AlertWriter | OutboxRelay | SqlClient.SqlClient | ClickHouse | Scope.Scope>
) =>
  Effect.gen(function*() {
    const db = yield* Effect.acquireRelease(Effect.promise(freshDatabase), (db) => Effect.promise(db.drop))
    const url = Redacted.make(db.url)
    yield* Effect.provide(migratePostgres, PgClient.layer({ url }))
    const database = uniqueName("relay")
    yield* Effect.promise(async () => {
      await clickhouse.command({ query: `CREATE DATABASE ${database}` })
      await clickhouse.command({ query: `USE ${database}` })
    })
    yield* migrateClickHouse(clickhouse)
    const owner = Context.get(yield* Layer.build(PgClient.layer({ url })), SqlClient.SqlClient)
    const stores = Layer.mergeAll(writerLayer(), relayLayer(config)).pipe(
      Layer.provideMerge(Layer.mergeAll(PgClient.layer({ url: connectAs(url) }), Layer.succeed(ClickHouse, clickhouse)))
    )
    yield* Effect.provide(test(owner), stores)
  }).pipe(Effect.scoped, Effect.runPromise)

describe("OutboxRelay", () => {
  it("relays every outbox row to ClickHouse exactly once", () =>
    withStores({ batchSize: 500 }, (owner) =>
      Effect.gen(function*() {
        yield* writeAlerts(0, 1_200, traceparent)
        const relay = yield* OutboxRelay
        const moved = [yield* relay.relayOnce, yield* relay.relayOnce, yield* relay.relayOnce, yield* relay.relayOnce]
        expect(moved).toEqual([500, 500, 200, 0])
        expect(yield* alertsInClickHouse).toEqual({ rows: 1_200, alerts: 1_200, ids: 1_200, lowest: 1, highest: 1_200 })
        expect(yield* relay.backlog).toEqual({ pending: 0, oldest: Option.none() })
        expect(yield* owner`SELECT count(*)::int AS n FROM outbox WHERE published_at IS NULL`).toEqual([{ n: 0 }])

        // The row in ClickHouse is the payload plus the relay's columns.
        const [row] = yield* queryClickHouse<Record<string, unknown>>(
          `SELECT * EXCEPT relayed_at FROM alerts WHERE transaction_id = 'T0000000007'`
        )
        const [outbox] = yield* owner<{ id: string; payload: Record<string, unknown> }>`
          SELECT id, payload FROM outbox WHERE alert_id = ${alertIdOf("T0000000007")}`
        expect(row).toEqual({
          ...outbox!.payload,
          outbox_id: Number(outbox!.id),
          trace_id: "4bf92f3577b34da6a3ce929d0e0e4736"
        })
      })))

  it("leaves no duplicate when a relay dies between the ClickHouse insert and the mark", () =>
    withStores({ batchSize: 300, leaseDuration: "1 second" }, (owner) =>
      Effect.gen(function*() {
        yield* writeAlerts(0, 500, traceparent)
        const relay = yield* OutboxRelay
        // The relay that dies: it claimed and inserted, but never marked its rows published.
        const lost = Option.getOrThrow(yield* relay.claim)
        yield* relay.deliver(lost)
        expect(yield* alertsInClickHouse).toMatchObject({ rows: 300 })

        // While its lease lasts the claim is nobody else's: the next claim takes the other rows.
        const rest = Option.getOrThrow(yield* relay.claim)
        expect(rest.rows.map((r) => r.id)).toEqual(Array.from({ length: 200 }, (_, i) => String(301 + i)))
        yield* relay.deliver(rest)
        yield* relay.acknowledge(rest)

        // Once the lease has run out, the next relay takes the whole claim over and re-sends it as it was.
        yield* Effect.sleep("1200 millis")
        const retaken = Option.getOrThrow(yield* relay.claim)
        expect(retaken).toEqual(lost)
        yield* relay.deliver(retaken)
        yield* relay.acknowledge(retaken)

        expect(yield* alertsInClickHouse).toEqual({ rows: 500, alerts: 500, ids: 500, lowest: 1, highest: 500 })
        expect(yield* relay.relayOnce).toBe(0)
        expect(
          yield* owner`SELECT claim_attempts, count(*)::int AS n FROM outbox
                       WHERE published_at IS NOT NULL GROUP BY claim_attempts ORDER BY claim_attempts`
        ).toEqual([{ claim_attempts: 1, n: 200 }, { claim_attempts: 2, n: 300 }])
      })))

  it("takes an expired claim over within a lease even while new rows keep coming", () =>
    withStores({ batchSize: 100, leaseDuration: "1 second" }, () =>
      Effect.gen(function*() {
        yield* writeAlerts(0, 1_000)
        const relay = yield* OutboxRelay
        // The relay that dies after its insert, and the one that goes on with new rows meanwhile.
        const lost = Option.getOrThrow(yield* relay.claim)
        yield* relay.deliver(lost)
        const next = Option.getOrThrow(yield* relay.claim)
        expect(next.rows[0]!.id).toBe("101")
        yield* relay.deliver(next)
        yield* relay.acknowledge(next)

        // Once the lease has run out, the claim is taken over whole although 800 rows wait unclaimed.
        yield* Effect.sleep("1200 millis")
        const retaken = Option.getOrThrow(yield* relay.claim)
        expect(retaken).toEqual(lost)
        yield* relay.deliver(retaken)
        yield* relay.acknowledge(retaken)

        while ((yield* relay.relayOnce) > 0) continue
        expect(yield* alertsInClickHouse).toEqual({ rows: 1_000, alerts: 1_000, ids: 1_000, lowest: 1, highest: 1_000 })
      })))

  it("offers a claim whose insert failed to its next claim, before any new row", () =>
    withStores({ batchSize: 100 }, (owner) =>
      Effect.gen(function*() {
        yield* writeAlerts(0, 300)
        // ClickHouse refuses the first insert as a dropped connection would.
        let refused = false
        const flaky = new Proxy(clickhouse, {
          get: (target, key) => {
            const value: unknown = Reflect.get(target, key)
            if (key === "exec" && !refused) {
              refused = true
              return () => Promise.reject(Object.assign(new Error("socket hang up"), { code: "ECONNRESET" }))
            }
            return typeof value === "function" ? value.bind(target) : value
          }
        })
        const relay = yield* makeRelay({ batchSize: 100 }).pipe(Effect.provideService(ClickHouse, flaky))
        expect(yield* Effect.flip(relay.relayOnce)).toMatchObject({ step: "deliver", classification: "transient" })

        // The same rows again, at once (the lease of 30 s has not run out): the claim was released.
        const retried = Option.getOrThrow(yield* relay.claim)
        expect(retried.rows.map((row) => row.id)).toEqual(Array.from({ length: 100 }, (_, i) => String(i + 1)))
        yield* relay.deliver(retried)
        yield* relay.acknowledge(retried)
        while ((yield* relay.relayOnce) > 0) continue
        expect(yield* alertsInClickHouse).toEqual({ rows: 300, alerts: 300, ids: 300, lowest: 1, highest: 300 })
        expect(
          yield* owner`SELECT claim_attempts, count(*)::int AS n FROM outbox GROUP BY claim_attempts ORDER BY claim_attempts`
        ).toEqual([{ claim_attempts: 1, n: 200 }, { claim_attempts: 2, n: 100 }])
      })))

  it("lets two relays work the same outbox at once without a duplicate or a gap", () =>
    withStores({ batchSize: 250 }, () =>
      Effect.gen(function*() {
        yield* writeAlerts(0, 5_000, traceparent)
        // Two relays as two fibers of one process share its pool and its one chDB client.
        const relays = [yield* makeRelay({ batchSize: 250 }), yield* makeRelay({ batchSize: 250 })]
        const drain = (relay: (typeof relays)[number]) =>
          Effect.iterate({ moved: 0, last: -1 }, {
            while: ({ last }) => last !== 0,
            body: ({ moved }) => Effect.map(relay.relayOnce, (n) => ({ moved: moved + n, last: n }))
          })
        const [a, b] = yield* Effect.all(relays.map(drain), { concurrency: "unbounded" })
        // Each relay did part of the work, and together exactly all of it: no row was claimed twice.
        expect(a!.moved).toBeGreaterThan(0)
        expect(b!.moved).toBeGreaterThan(0)
        expect(a!.moved + b!.moved).toBe(5_000)
        expect(yield* alertsInClickHouse).toEqual({ rows: 5_000, alerts: 5_000, ids: 5_000, lowest: 1, highest: 5_000 })
      })))

  it("runs until stopped, relaying what arrives meanwhile", () =>
    withStores({ batchSize: 100, pollInterval: "50 millis" }, () =>
      Effect.gen(function*() {
        const relay = yield* OutboxRelay
        const stop = yield* Deferred.make<void>()
        const running = yield* Effect.fork(relay.run(stop))
        yield* writeAlerts(0, 250, traceparent)
        yield* until(Effect.map(relay.backlog, ({ pending }) => pending === 0))
        yield* writeAlerts(250, 250, traceparent)
        yield* until(Effect.map(relay.backlog, ({ pending }) => pending === 0))
        yield* Deferred.succeed(stop, undefined)
        yield* Fiber.join(running)
        expect(yield* alertsInClickHouse).toEqual({ rows: 500, alerts: 500, ids: 500, lowest: 1, highest: 500 })
      })))

  it("prunes only published rows older than the retention", () =>
    withStores({ retention: "1 day" }, (owner) =>
      Effect.gen(function*() {
        yield* writeAlerts(0, 30, traceparent)
        const relay = yield* OutboxRelay
        expect(yield* relay.relayOnce).toBe(30)
        yield* writeAlerts(30, 5, traceparent)
        // Rows 1-10 were published two days ago, rows 11-20 a moment under a day ago; 31-35 are pending,
        // and 31-32 were written two days ago.
        yield* owner`UPDATE outbox SET published_at = now() - interval '2 days' WHERE id <= 10`
        yield* owner`UPDATE outbox SET published_at = now() - interval '23 hours' WHERE id BETWEEN 11 AND 20`
        yield* owner`UPDATE outbox SET created_at = now() - interval '2 days' WHERE id IN (31, 32)`

        expect(yield* relay.prune).toBe(10)
        expect(yield* relay.prune).toBe(0)
        expect(yield* owner`SELECT min(id)::int AS lowest, count(*)::int AS n FROM outbox`).toEqual([{
          lowest: 11,
          n: 25
        }])
        const backlog = yield* relay.backlog
        expect(backlog.pending).toBe(5)
        expect(Duration.toHours(Option.getOrThrow(backlog.oldest))).toBeGreaterThanOrEqual(47.9)
      })))
})
