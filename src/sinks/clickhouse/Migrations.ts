/**
 * Applies the versioned DDL in `clickhouse/` (`0001_name.sql`, …) in order and records each applied
 * file in `schema_migrations`. Every statement is written to be re-runnable (`IF NOT EXISTS`), so a
 * run interrupted half-way through a file is finished by the next run, and a second run is a no-op.
 *
 * DDL cannot bind parameters, so the only values ever put into the SQL text are the `{{name}}`
 * placeholders below, each a validated integer number of days; any other placeholder is an error.
 * A placeholder's value is fixed when its file is applied: a TTL changed later is reported, and
 * takes a new migration (`ALTER TABLE … MODIFY TTL`) to apply to existing tables.
 */
import type { ClickHouseClient } from "@clickhouse/client"
import { Effect, Either } from "effect"
import { createHash } from "node:crypto"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { Readable } from "node:stream"
import { ClickHouseMigrationError, migrationError } from "./ClickHouseError.ts"

export interface MigrationOptions {
  /**
   * Days analytics rows (transactions, detections, features, alerts, rollups, labels) are kept,
   * counted from the transaction's time: older rows are dropped, on insert too. Default 365.
   */
  readonly analyticsTtlDays?: number
  /** Days performance metrics are kept, counted from the metric's time. Default 90. */
  readonly metricsTtlDays?: number
  /** Folder of the `NNNN_name.sql` files. Default: the project's `clickhouse/`. */
  readonly directory?: string
}

export interface MigrationReport {
  readonly applied: ReadonlyArray<string>
  readonly alreadyApplied: ReadonlyArray<string>
}

export const defaultDirectory = path.resolve(import.meta.dirname, "..", "..", "..", "clickhouse")

const migrationsTable = "schema_migrations"

const fileName = /^(\d{4})_[a-z0-9_]+\.sql$/

interface Migration {
  readonly version: number
  readonly name: string
  /** Of the statements before rendering: comments may change, placeholder values may differ. */
  readonly checksum: string
  readonly statements: ReadonlyArray<string>
}

const placeholder = /\{\{\s*([A-Za-z0-9_]+)\s*\}\}/g

/**
 * TTLs are computed as `toDateTime(time) + INTERVAL n DAY`, and DateTime ends in 2106: a longer
 * period wraps around to a date in the past, and every row would expire as it is inserted.
 */
export const maxTtlDays = 10_000

/** The placeholder values, validated: each must be an integer from 1 to {@link maxTtlDays}. */
export const placeholderValues = (
  options: MigrationOptions
): Effect.Effect<ReadonlyMap<string, string>, ClickHouseMigrationError> => {
  const values = { analyticsTtlDays: options.analyticsTtlDays ?? 365, metricsTtlDays: options.metricsTtlDays ?? 90 }
  const invalid = Object.entries(values).filter(([, value]) =>
    !(Number.isSafeInteger(value) && value > 0 && value <= maxTtlDays)
  )
  return invalid.length === 0
    ? Effect.succeed(new Map(Object.entries(values).map(([name, value]) => [name, String(value)])))
    : Effect.fail(
      new ClickHouseMigrationError({
        migration: undefined,
        classification: "permanent",
        message: invalid.map(([name, value]) =>
          `${name} must be an integer from 1 to ${maxTtlDays}, got ${String(value)}`
        )
          .join("; ")
      })
    )
}

/** Replaces every `{{name}}`; a name without a value is an error rather than SQL with a hole in it. */
export const render = (template: string, values: ReadonlyMap<string, string>): Either.Either<string, string> => {
  const unknown = new Set<string>()
  const sql = template.replace(placeholder, (_, name: string) => {
    const value = values.get(name)
    if (value === undefined) unknown.add(name)
    return value ?? ""
  })
  return unknown.size === 0 ? Either.right(sql) : Either.left(`unknown placeholder {{${[...unknown].join("}}, {{")}}}`)
}

/**
 * Splits a file into statements at the `;` that end them — not at one inside a string, a quoted
 * identifier or a comment — and drops the comments, so editing one changes neither what runs nor
 * the migration's checksum.
 */
export const splitStatements = (sql: string): ReadonlyArray<string> => {
  const statements: Array<string> = []
  let statement = ""
  let copiedUpTo = 0
  const copy = (to: number) => {
    statement += sql.slice(copiedUpTo, to)
  }
  const end = () => {
    if (statement.trim() !== "") statements.push(statement.trim())
    statement = ""
  }
  for (let i = 0; i < sql.length; i++) {
    const char = sql[i]
    if (char === "-" && sql[i + 1] === "-") {
      copy(i)
      const newline = sql.indexOf("\n", i)
      i = newline === -1 ? sql.length : newline - 1
      copiedUpTo = i + 1
    } else if (char === "/" && sql[i + 1] === "*") {
      copy(i)
      statement += " "
      const close = sql.indexOf("*/", i + 2)
      i = close === -1 ? sql.length : close + 1
      copiedUpTo = i + 1
    } else if (char === "'" || char === "\"" || char === "`") {
      // A doubled quote inside a literal ('it''s') reads as its end and the start of another.
      for (i++; i < sql.length && sql[i] !== char; i++) {
        if (sql[i] === "\\") i++
      }
    } else if (char === ";") {
      copy(i)
      copiedUpTo = i + 1
      end()
    }
  }
  copy(sql.length)
  end()
  return statements
}

const readMigrations = (directory: string): Effect.Effect<ReadonlyArray<Migration>, ClickHouseMigrationError> =>
  Effect.tryPromise({
    try: async () => {
      const names = (await fs.readdir(directory)).filter((name) => name.endsWith(".sql")).sort()
      const misnamed = names.filter((name) => !fileName.test(name))
      if (misnamed.length > 0) throw new Error(`not named NNNN_name.sql: ${misnamed.join(", ")}`)
      const migrations = await Promise.all(
        names.map(async (name): Promise<Migration> => {
          const statements = splitStatements(await fs.readFile(path.join(directory, name), "utf8"))
          return {
            version: Number(fileName.exec(name)![1]),
            name,
            checksum: createHash("sha256").update(statements.join(";\n")).digest("hex"),
            statements
          }
        })
      )
      const versions = migrations.map((migration) => migration.version)
      if (new Set(versions).size !== versions.length) throw new Error(`two migrations share a version in ${directory}`)
      return migrations
    },
    catch: (cause) => migrationError(undefined, cause)
  })

interface AppliedRow {
  readonly version: number
  readonly name: string
  readonly checksum: string
  /** JSON of the placeholder values the file was applied with. */
  readonly placeholders: string
}

/** The values of the placeholders `migration` uses. */
const valuesUsed = (migration: Migration, values: ReadonlyMap<string, string>): Record<string, string> =>
  Object.fromEntries(
    migration.statements.flatMap((statement) =>
      [...statement.matchAll(placeholder)].map(([, name]) => [name!, values.get(name!) ?? ""])
    )
  )

const appliedMigrations = (client: ClickHouseClient) =>
  Effect.tryPromise({
    try: async () => {
      await client.command({
        query: `CREATE TABLE IF NOT EXISTS ${migrationsTable} (
          version UInt32, name String, checksum String, placeholders String,
          applied_at DateTime64(3, 'UTC') DEFAULT now64(3)
        ) ENGINE = MergeTree ORDER BY version
        SETTINGS non_replicated_deduplication_window = 1000`
      })
      const result = await client.query({
        query: `SELECT version, any(name) AS name, any(checksum) AS checksum, any(placeholders) AS placeholders
          FROM ${migrationsTable} GROUP BY version`,
        format: "JSONEachRow"
      })
      return new Map((await result.json<AppliedRow>()).map((row) => [row.version, row]))
    },
    catch: (cause) => migrationError(undefined, cause)
  })

const apply = (client: ClickHouseClient, migration: Migration, values: ReadonlyMap<string, string>) =>
  Effect.gen(function*() {
    const statements = yield* Effect.mapError(
      Either.all(migration.statements.map((statement) => render(statement, values))),
      (message) => new ClickHouseMigrationError({ migration: migration.name, classification: "permanent", message })
    )
    for (const statement of statements) {
      yield* Effect.tryPromise({
        try: () => client.command({ query: statement }),
        catch: (cause) => migrationError(migration.name, cause)
      })
    }
    const record = JSON.stringify({
      version: migration.version,
      name: migration.name,
      checksum: migration.checksum,
      placeholders: JSON.stringify(valuesUsed(migration, values))
    })
    yield* Effect.tryPromise({
      try: async () => {
        // Two runs racing each other record a version once. The token goes into the statement: as a
        // client setting, chdb/connection would SET it on the shared session, and later inserts of
        // the same process without a token of their own would be dropped as duplicates.
        const result = await client.exec({
          query: `INSERT INTO ${migrationsTable} SETTINGS insert_deduplicate = 1, ` +
            `insert_deduplication_token = '${migrationsTable}:${migration.version}' FORMAT JSONEachRow`,
          values: Readable.from([record])
        })
        result.stream.destroy()
      },
      catch: (cause) => migrationError(migration.name, cause)
    })
  }).pipe(Effect.withSpan("ClickHouse.migrate", { attributes: { migration: migration.name } }))

/**
 * Brings the schema up to date. Fails without touching anything when an option is invalid, and
 * refuses to continue when an applied file was edited afterwards (its checksum changed): a new
 * change needs a new file.
 *
 * From a plain script: `await Effect.runPromise(migrateClickHouse(client, options))`.
 */
export const migrateClickHouse = (
  client: ClickHouseClient,
  options: MigrationOptions = {}
): Effect.Effect<MigrationReport, ClickHouseMigrationError> =>
  Effect.gen(function*() {
    const values = yield* placeholderValues(options)
    const migrations = yield* readMigrations(options.directory ?? defaultDirectory)
    const applied = yield* appliedMigrations(client)
    const report = { applied: [] as Array<string>, alreadyApplied: [] as Array<string> }
    for (const migration of migrations) {
      const previous = applied.get(migration.version)
      if (previous === undefined) {
        yield* apply(client, migration, values)
        report.applied.push(migration.name)
      } else if (previous.checksum !== migration.checksum) {
        return yield* new ClickHouseMigrationError({
          migration: migration.name,
          classification: "permanent",
          message: `${migration.name} changed after it was applied as ${previous.name}; add a new migration instead`
        })
      } else {
        const now = JSON.stringify(valuesUsed(migration, values))
        if (previous.placeholders !== now) {
          yield* Effect.logWarning(
            `${migration.name} was applied with ${previous.placeholders}, now ${now}: existing tables keep the ` +
              "old values until a new migration changes them (ALTER TABLE … MODIFY TTL)"
          )
        }
        report.alreadyApplied.push(migration.name)
      }
    }
    return report
  })
