/**
 * What the operator commands (`dlq`, `outbox`, `reconcile`) share: their sub-commands and options,
 * their PostgreSQL session, and how they print.
 */
import { PgClient } from "@effect/sql-pg"
import { Effect } from "effect"
import type { SentinelSettings } from "../config/Config.ts"
import { pgConnection } from "../sinks/postgres/PgConnection.ts"
import type { OptionValues } from "./Command.ts"
import { UsageError } from "./UsageError.ts"

/**
 * PostgreSQL as the daemon connects to it, under the daemon's role: an operator command may do no
 * more than the daemon may.
 */
export const postgresLayer = (settings: SentinelSettings, command: string) =>
  PgClient.layer({
    ...pgConnection(settings.postgres, settings.postgres.role),
    maxConnections: 2,
    applicationName: `sentinel ${command}`
  })

/** The options of one sub-command, read and checked; a bad one throws a UsageError naming it. */
export interface Options {
  readonly string: (name: string) => string | undefined
  readonly flag: (name: string) => boolean
  /** An ISO-8601 time. */
  readonly time: (name: string) => Date | undefined
  readonly positiveInteger: (name: string) => number | undefined
  /** Database ids: the option repeated, or comma-separated, or both. */
  readonly ids: (name: string) => ReadonlyArray<string> | undefined
  readonly id: (name: string) => string | undefined
}

const databaseId = /^[1-9][0-9]{0,18}$/

/** A database id given on the command line, checked. */
export const asId = (name: string, raw: string): string => {
  if (!databaseId.test(raw)) throw new UsageError(`${name} expects a positive integer id, got "${raw}"`)
  return raw
}

/** A command line's options, each read and checked when asked for. */
export const readOptions = (values: OptionValues): Options => {
  const string = (option: string) => {
    const raw = values[option]
    return typeof raw === "string" ? raw : undefined
  }
  return {
    string,
    flag: (option) => values[option] === true,
    time: (option) => {
      const raw = string(option)
      if (raw === undefined) return undefined
      const time = new Date(raw)
      if (raw.trim() === "" || Number.isNaN(time.getTime())) {
        throw new UsageError(`--${option} expects an ISO-8601 time, got "${raw}"`)
      }
      return time
    },
    positiveInteger: (option) => {
      const raw = string(option)
      if (raw === undefined) return undefined
      if (!/^[1-9][0-9]*$/.test(raw) || !Number.isSafeInteger(Number(raw))) {
        throw new UsageError(`--${option} expects a positive integer, got "${raw}"`)
      }
      return Number(raw)
    },
    ids: (option) => {
      const raw = values[option]
      if (raw === undefined) return undefined
      const list = (Array.isArray(raw) ? raw : [raw]).flatMap((item) => String(item).split(","))
      return list.map((item) => asId(`--${option}`, item.trim()))
    },
    id: (option) => {
      const raw = string(option)
      return raw === undefined ? undefined : asId(`--${option}`, raw)
    }
  }
}

/**
 * The sub-command named by the first word (one of `accepts`' keys) with its remaining words and its
 * options; an option the sub-command does not take is bad usage, as a missing or unknown sub-command is.
 */
export const subcommand = <S extends string>(
  positionals: ReadonlyArray<string>,
  values: OptionValues,
  accepts: Readonly<Record<S, ReadonlyArray<string>>>
): { readonly name: S; readonly words: ReadonlyArray<string>; readonly options: Options } => {
  const [name, ...words] = positionals
  const names = Object.keys(accepts) as Array<S>
  if (name === undefined) throw new UsageError(`name a sub-command: ${names.join(", ")}`)
  if (!names.includes(name as S)) throw new UsageError(`unknown sub-command "${name}" (${names.join(", ")})`)
  const accepted = accepts[name as S]
  // Options no sub-command takes are the command line's own (--help, --config).
  const own = new Set(Object.values<ReadonlyArray<string>>(accepts).flat())
  const refused = Object.keys(values).filter((option) =>
    own.has(option) && values[option] !== undefined && !accepted.includes(option)
  )
  if (refused.length > 0) throw new UsageError(`${name} does not take --${refused.join(", --")}`)
  return { name: name as S, words, options: readOptions(values) }
}

/** Reads a sub-command's command line; a UsageError it throws fails the effect (exit code 2). */
export const readCommandLine = <A>(read: () => A): Effect.Effect<A, unknown> =>
  Effect.try({ try: read, catch: (error) => error })

/** The words of a sub-command that takes none. */
export const noWords = (name: string, words: ReadonlyArray<string>): void => {
  if (words.length > 0) throw new UsageError(`${name} takes no argument, got "${words.join(" ")}"`)
}

export const printLine = (text: string) => Effect.sync(() => process.stdout.write(`${text}\n`))

export const printJson = (value: unknown) => printLine(JSON.stringify(value))

/** Rows as left-aligned columns under a header; the last column is not padded. */
export const table = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => row[i]?.length ?? 0)))
  const line = (cells: ReadonlyArray<string>) =>
    cells.map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i]!))).join("  ")
  return [line(header), ...rows.map(line)].join("\n")
}

/** One line of at most `width` characters. */
export const clip = (text: string, width: number): string => {
  const line = text.replace(/\s+/g, " ")
  return line.length <= width ? line : `${line.slice(0, width - 1)}…`
}
