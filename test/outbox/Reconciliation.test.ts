import type { ClickHouseClient } from "@clickhouse/client"
import { SqlClient } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { Context, Effect, Layer, Option, Redacted } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { make as makeRelay } from "../../src/outbox/OutboxRelay.ts"
import { reconcile, redrive } from "../../src/outbox/Reconciliation.ts"
import { ClickHouse, makeClient } from "../../src/sinks/clickhouse/ClickHouse.ts"
import { migrateClickHouse } from "../../src/sinks/clickhouse/Migrations.ts"
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

/** Rows, distinct alerts and the outbox ids ClickHouse holds. */
const alertsInClickHouse = Effect.promise(async () => {
  const result = await clickhouse.query({
    query:
      "SELECT count() AS rows, uniqExact(alert_id) AS alerts, min(outbox_id) AS lowest, max(outbox_id) AS highest " +
      "FROM alerts",
    format: "JSONEachRow"
  })
  const [row] = await result.json<Record<string, string | number>>()
  return Object.fromEntries(Object.entries(row!).map(([k, v]) => [k, Number(v)]))
})

/** A fresh PostgreSQL database and ClickHouse database, both migrated; the writer works as the daemon's role. */
const withStores = (
  test: (owner: SqlClient.SqlClient) => Effect.Effect<void, unknown, AlertWriter | SqlClient.SqlClient | ClickHouse>
) =>
  Effect.gen(function*() {
    const db = yield* Effect.acquireRelease(Effect.promise(freshDatabase), (db) => Effect.promise(db.drop))
    const url = Redacted.make(db.url)
    yield* Effect.provide(migratePostgres, PgClient.layer({ url }))
    const database = uniqueName("reconcile")
    yield* Effect.promise(async () => {
      await clickhouse.command({ query: `CREATE DATABASE ${database}` })
      await clickhouse.command({ query: `USE ${database}` })
    })
    yield* migrateClickHouse(clickhouse)
    const owner = Context.get(yield* Layer.build(PgClient.layer({ url })), SqlClient.SqlClient)
    const stores = writerLayer().pipe(
      Layer.provideMerge(Layer.mergeAll(PgClient.layer({ url: connectAs(url) }), Layer.succeed(ClickHouse, clickhouse)))
    )
    yield* Effect.provide(test(owner), stores)
  }).pipe(Effect.scoped, Effect.runPromise)

describe("redelivery of alerts ClickHouse lost", () => {
  it("re-sends a lost claim whole under new outbox ids, which ClickHouse takes; the old token it would drop", () =>
    withStores(() =>
      Effect.gen(function*() {
        yield* writeAlerts(0, 20)
        const relay = yield* makeRelay({ batchSize: 20 })
        const claim = Option.getOrThrow(yield* relay.claim)
        yield* relay.deliver(claim)
        yield* relay.acknowledge(claim)
        expect(yield* alertsInClickHouse).toEqual({ rows: 20, alerts: 20, lowest: 1, highest: 20 })

        // ClickHouse loses the claim's rows; it still remembers the claim's insert token.
        yield* Effect.promise(() => clickhouse.command({ query: "DELETE FROM alerts WHERE 1" }))
        yield* relay.deliver(claim)
        expect(yield* alertsInClickHouse).toMatchObject({ rows: 0 })

        expect(yield* redrive({ from: 1n, to: 20n }, true)).toMatchObject({ checked: 20, requeued: 20 })
        expect(yield* redrive({ from: 1n, to: 20n }, false)).toEqual({
          from: "1",
          to: "20",
          dryRun: false,
          checked: 20,
          requeued: 20,
          alreadyPresent: 0,
          pending: 0
        })
        // The same rows, claimed again whole, under ids ClickHouse never saw in a token.
        expect(yield* relay.relayOnce).toBe(20)
        expect(yield* alertsInClickHouse).toEqual({ rows: 20, alerts: 20, lowest: 21, highest: 40 })
        expect(yield* redrive({ from: 1n, to: 40n }, false)).toMatchObject({
          checked: 20,
          requeued: 0,
          alreadyPresent: 20
        })
        expect(yield* relay.relayOnce).toBe(0)
      })
    ))

  it("never queues again an alert whose delivery may be in flight", () =>
    withStores((owner) =>
      Effect.gen(function*() {
        yield* writeAlerts(0, 20)
        const relay = yield* makeRelay({ batchSize: 10, leaseDuration: "1 second" })
        // One relay inserted its claim and died before marking it; another died before inserting.
        const inserted = Option.getOrThrow(yield* relay.claim)
        yield* relay.deliver(inserted)
        Option.getOrThrow(yield* relay.claim)

        const report = yield* reconcile({ since: undefined, until: new Date(), repair: true, relay: {} })
        expect(report).toMatchObject({
          postgres: 20,
          clickhouse: 10,
          missing: { count: 0 },
          pending: { count: 10 },
          extra: { count: 0 },
          duplicated: { count: 0 },
          repaired: { requeued: 0, rebuilt: 0 }
        })
        expect(yield* redrive({ from: 1n, to: 20n }, false)).toMatchObject({ checked: 0, requeued: 0, pending: 20 })
        expect(yield* owner`SELECT min(id)::int AS lowest, max(id)::int AS highest FROM outbox`).toEqual([{
          lowest: 1,
          highest: 20
        }])

        // The leases run out; the claims are taken over whole, and every alert lands once.
        yield* Effect.sleep("1200 millis")
        expect((yield* relay.relayOnce) + (yield* relay.relayOnce)).toBe(20)
        expect(yield* alertsInClickHouse).toEqual({ rows: 20, alerts: 20, lowest: 1, highest: 20 })
        expect(yield* reconcile({ since: undefined, until: new Date(), repair: false, relay: {} })).toMatchObject({
          missing: { count: 0 },
          pending: { count: 0 },
          repaired: null
        })
      })
    ))
})
