/**
 * Applies `migrations/NNNN_name.sql` in version order and records each in `schema_migrations`.
 *
 * The whole run is one transaction behind a transaction-scoped advisory lock, so two processes
 * migrating the same database at once serialise (the second finds nothing left to do) and a failed
 * file leaves the database as it was. The files are the source of truth: an applied file whose
 * content changed since is refused rather than silently ignored.
 */
import { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import { Data, Effect } from "effect"
import { createHash } from "node:crypto"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

export interface Migration {
  readonly version: number
  readonly name: string
}

export class MigrationError extends Data.TaggedError("MigrationError")<{
  readonly reason: "unreadable" | "duplicate-version" | "changed-after-apply"
  readonly message: string
  readonly cause?: unknown
}> {}

interface MigrationFile extends Migration {
  readonly sql: string
  readonly checksum: string
}

const directory = fileURLToPath(new URL("../../../migrations/", import.meta.url))

const fileName = /^(\d+)_([A-Za-z0-9_-]+)\.sql$/

const readMigrations = Effect.tryPromise({
  try: async (): Promise<ReadonlyArray<MigrationFile>> => {
    const files: Array<MigrationFile> = []
    for (const entry of (await fs.readdir(directory)).sort()) {
      const match = fileName.exec(entry)
      if (match === null) continue
      const sql = await fs.readFile(path.join(directory, entry), "utf8")
      files.push({
        version: Number(match[1]),
        name: match[2]!,
        sql,
        checksum: createHash("sha256").update(sql).digest("hex")
      })
    }
    return files.sort((a, b) => a.version - b.version)
  },
  catch: (cause) => new MigrationError({ reason: "unreadable", message: `cannot read ${directory}`, cause })
}).pipe(
  Effect.filterOrFail(
    (files) => new Set(files.map((file) => file.version)).size === files.length,
    () => new MigrationError({ reason: "duplicate-version", message: `two files in ${directory} share a version` })
  )
)

/** Applies the migrations not applied yet; succeeds with those it applied (none when up to date). */
export const migratePostgres: Effect.Effect<ReadonlyArray<Migration>, MigrationError | SqlError, SqlClient.SqlClient> =
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const files = yield* readMigrations
    return yield* sql.withTransaction(
      Effect.gen(function*() {
        // Any constant works: it only has to be the same for every Sentinel (advisory locks are per database).
        yield* sql`SELECT pg_advisory_xact_lock(7310552841006001)`
        yield* sql`CREATE TABLE IF NOT EXISTS schema_migrations (
          version    integer PRIMARY KEY,
          name       text NOT NULL,
          checksum   text NOT NULL,
          applied_at timestamptz NOT NULL DEFAULT now()
        )`
        const applied = new Map(
          (yield* sql<{ version: number; checksum: string }>`SELECT version, checksum FROM schema_migrations`).map(
            (row) => [row.version, row.checksum] as const
          )
        )
        const pending: Array<Migration> = []
        for (const file of files) {
          const checksum = applied.get(file.version)
          if (checksum === undefined) {
            yield* sql.unsafe(file.sql).pipe(
              Effect.withSpan("migratePostgres.apply", { attributes: { version: file.version } })
            )
            yield* sql`INSERT INTO schema_migrations (version, name, checksum)
                       VALUES (${file.version}, ${file.name}, ${file.checksum})`
            pending.push({ version: file.version, name: file.name })
          } else if (checksum !== file.checksum) {
            return yield* new MigrationError({
              reason: "changed-after-apply",
              message: `migration ${file.version}_${file.name} was changed after it was applied`
            })
          }
        }
        return pending
      })
    )
  }).pipe(Effect.withSpan("migratePostgres"))
