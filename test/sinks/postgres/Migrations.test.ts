import { SqlClient } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { Effect, Redacted } from "effect"
import { describe, expect, it } from "vitest"
import { migratePostgres } from "../../../src/sinks/postgres/Migrations.ts"
import { connectAs } from "../../../src/sinks/postgres/WriterRole.ts"
import { freshDatabase } from "../../support/services.ts"

const allVersions = [1, 2, 3, 4, 5, 6, 7]

/** Runs `test` against a database of its own, dropped afterwards whatever happens. */
const withDatabase = async (test: (url: Redacted.Redacted) => Promise<void>): Promise<void> => {
  const db = await freshDatabase()
  try {
    await test(Redacted.make(db.url))
  } finally {
    await db.drop()
  }
}

const runAs = <A, E>(url: Redacted.Redacted, effect: Effect.Effect<A, E, SqlClient.SqlClient>): Promise<A> =>
  Effect.runPromise(Effect.provide(effect, PgClient.layer({ url })))

const versions = (applied: ReadonlyArray<{ readonly version: number }>) => applied.map((m) => m.version)

/** The SQLSTATE a statement fails with, or "ok". */
const outcome = <A, E>(effect: Effect.Effect<A, E>) =>
  effect.pipe(
    Effect.as("ok"),
    Effect.catchAll((error) => {
      const cause = (error as { cause?: { code?: string } }).cause
      return Effect.succeed(cause?.code ?? String(error))
    })
  )

describe("migratePostgres", () => {
  it("applies every migration once; a second run is a no-op", () =>
    withDatabase(async (url) => {
      const [first, second, recorded] = await runAs(
        url,
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const first = yield* migratePostgres
          const second = yield* migratePostgres
          const recorded = yield* sql<{ version: number }>`SELECT version FROM schema_migrations ORDER BY version`
          return [first, second, recorded] as const
        })
      )
      expect(versions(first)).toEqual(allVersions)
      expect(second).toEqual([])
      expect(versions(recorded)).toEqual(allVersions)
    }))

  it("serialises two processes migrating at once: both succeed, the work is done once", () =>
    withDatabase(async (url) => {
      // Two layers are two pools, i.e. two independent sessions, as two daemons starting together would be.
      const [a, b] = await Promise.all([runAs(url, migratePostgres), runAs(url, migratePostgres)])
      expect([versions(a), versions(b)].sort((x, y) => y.length - x.length)).toEqual([allVersions, []])
      const recorded = await runAs(
        url,
        Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT count(*)::int AS n FROM schema_migrations`)
      )
      expect(recorded).toEqual([{ n: allVersions.length }])
    }))

  it("refuses to run when an applied migration's file changed", () =>
    withDatabase(async (url) => {
      const error = await runAs(
        url,
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          yield* migratePostgres
          yield* sql`UPDATE schema_migrations SET checksum = 'edited' WHERE version = 2`
          return yield* Effect.flip(migratePostgres)
        })
      )
      expect(error).toMatchObject({ _tag: "MigrationError", reason: "changed-after-apply" })
    }))

  it("lets the writer role append to system_audit_log but never change or remove a row", () =>
    withDatabase(async (url) => {
      await runAs(url, migratePostgres)
      const results = await runAs(
        connectAs(url),
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const [{ role }] = yield* sql<{ role: string }>`SELECT current_user AS role`
          const insert = yield* outcome(sql`
            INSERT INTO system_audit_log (event_key, event_type, entity_type, entity_id, action, occurred_at)
            VALUES ('test:1', 'TEST', 'test', '1', 'INSERT', now())`)
          const update = yield* outcome(sql`UPDATE system_audit_log SET action = 'CHANGED'`)
          const remove = yield* outcome(sql`DELETE FROM system_audit_log`)
          const truncate = yield* outcome(sql`TRUNCATE system_audit_log`)
          return { role, insert, update, remove, truncate }
        })
      )
      // 42501: insufficient_privilege.
      expect(results).toEqual({
        role: "sentinel_writer",
        insert: "ok",
        update: "42501",
        remove: "42501",
        truncate: "42501"
      })
      const rows = await runAs(
        url,
        Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT event_key, action FROM system_audit_log`)
      )
      expect(rows).toEqual([{ event_key: "test:1", action: "INSERT" }])
    }))
})
