/**
 * `sentinel run --print-config`: the effective configuration as JSON, each variable with its value
 * and where it came from (`env`, `file` or `default`), secrets masked. Runs after the configuration
 * was loaded and validated, and connects to nothing.
 */
import { Effect, Option } from "effect"
import { defaultValues, variableNames } from "./Config.ts"
import { ConfigSources, lookup, type Source, type Sources } from "./ConfigFile.ts"
import { maskValue } from "./Secrets.ts"

export interface EffectiveConfiguration {
  readonly configFile: string | null
  /** Every variable the configuration reads; a null value is unset (the setting is off or derived). */
  readonly settings: Readonly<Record<string, { readonly value: string | null; readonly source: Source }>>
  /** Names in the config file that Sentinel does not read, with their line. */
  readonly ignored: Readonly<Record<string, number>>
}

export const effectiveConfiguration = (sources: Sources): EffectiveConfiguration => {
  const known = new Set(variableNames)
  return {
    configFile: sources.file?.path ?? null,
    settings: Object.fromEntries(variableNames.map((name) => {
      const { source, value } = lookup(sources, name)
      const shown = source === "default" ? defaultValues.get(name) : value
      return [name, { value: shown === undefined ? null : maskValue(name, shown), source }]
    })),
    ignored: Object.fromEntries(
      [...(sources.file?.entries ?? [])].filter(([name]) => !known.has(name)).map(([name, { line }]) => [name, line])
    )
  }
}

/** Prints the configuration the command was started with; exit code 0. */
export const printConfig: Effect.Effect<number> = Effect.gen(function*() {
  const sources = Option.getOrElse(
    yield* Effect.serviceOption(ConfigSources),
    (): Sources => ({ env: process.env, file: undefined })
  )
  yield* Effect.sync(() => process.stdout.write(`${JSON.stringify(effectiveConfiguration(sources), null, 2)}\n`))
  return 0
})
