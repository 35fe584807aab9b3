import type { Effect } from "effect"
import type { ParseArgsConfig } from "node:util"
import type { SentinelSettings } from "../config/Config.ts"

/** Parsed options of a command line: strings, flags, and lists for options given `multiple`. */
export type OptionValues = Record<string, string | boolean | ReadonlyArray<string | boolean> | undefined>

/**
 * One `sentinel` command. `run` returns the process's exit code; a `UsageError` it fails with is
 * reported with `usage` and exit code 2.
 */
export interface Command {
  readonly summary: string
  readonly usage: string
  readonly options: NonNullable<ParseArgsConfig["options"]>
  /** Words after the command name that name a sub-command (`dlq list`), when it has any. */
  readonly allowPositionals?: boolean
  readonly run: (
    settings: SentinelSettings,
    values: OptionValues,
    positionals: ReadonlyArray<string>
  ) => Effect.Effect<number, unknown>
}
