/**
 * The optional config file (`SENTINEL_CONFIG_FILE=path`, or `sentinel <command> --config path`):
 * `NAME=value` lines with the environment's names, `#` comment lines, blank lines, values optionally
 * in single or double quotes (taken literally; a `#` inside a value is part of it). The environment
 * wins over the file, variable by variable: the file is a ConfigProvider behind the environment's,
 * so a value is validated the same way, with the same message, wherever it comes from.
 */
import { ConfigProvider, Context, Data, Effect, Either } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"

export class ConfigFileError extends Data.TaggedError("ConfigFileError")<{
  readonly file: string
  /** 1-based; undefined when the file itself is the problem. */
  readonly line: number | undefined
  readonly reason: string
}> {
  override get message() {
    return `config file ${this.file}${this.line === undefined ? "" : ` line ${this.line}`}: ${this.reason}`
  }
}

export interface ConfigFile {
  readonly path: string
  readonly entries: ReadonlyMap<string, { readonly value: string; readonly line: number }>
}

const assignment = /^([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/

const unquote = (raw: string): Either.Either<string, string> => {
  const quote = raw[0]
  if (quote !== "\"" && quote !== "'") return Either.right(raw)
  return raw.length >= 2 && raw.endsWith(quote)
    ? Either.right(raw.slice(1, -1))
    : Either.left(`expected a closing ${quote}`)
}

export const parse = (file: string, text: string): Either.Either<ConfigFile, ConfigFileError> => {
  const entries = new Map<string, { value: string; line: number }>()
  const lines = text.split(/\r?\n/)
  for (let index = 0; index < lines.length; index++) {
    const line = index + 1
    const content = lines[index]!.trim()
    if (content === "" || content.startsWith("#")) continue
    const fail = (reason: string) => Either.left(new ConfigFileError({ file, line, reason }))
    const match = assignment.exec(content)
    if (match === null) return fail("expected NAME=value")
    const [, name, raw] = match as unknown as [string, string, string]
    const earlier = entries.get(name)
    if (earlier !== undefined) return fail(`${name} is set twice (also on line ${earlier.line})`)
    const value = unquote(raw.trim())
    if (Either.isLeft(value)) return fail(`${name}: ${value.left}`)
    entries.set(name, { value: value.right, line })
  }
  return Either.right({ path: file, entries })
}

export const read = (file: string): Effect.Effect<ConfigFile, ConfigFileError> =>
  Effect.try({
    try: () => fs.readFileSync(file, "utf8"),
    catch: (error) =>
      new ConfigFileError({
        file,
        line: undefined,
        reason: `cannot read it (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`
      })
  }).pipe(Effect.flatMap((text) => parse(file, text)))

/** Where the configuration comes from: the environment, and the config file when there is one. */
export interface Sources {
  readonly env: Readonly<Record<string, string | undefined>>
  readonly file: ConfigFile | undefined
}

export class ConfigSources extends Context.Tag("sentinel/ConfigSources")<ConfigSources, Sources>() {}

/** The file named by `option` (`--config`), else by SENTINEL_CONFIG_FILE, read and parsed. */
export const resolve = (
  option: string | undefined,
  env: Readonly<Record<string, string | undefined>> = process.env
): Effect.Effect<Sources, ConfigFileError> => {
  const file = option ?? env.SENTINEL_CONFIG_FILE
  return file === undefined || file === ""
    ? Effect.succeed({ env, file: undefined })
    : Effect.map(read(path.resolve(file)), (parsed) => ({ env, file: parsed }))
}

/**
 * The environment, then the file. The file answers only for variables the environment lacks: were
 * it asked after an environment value failed to parse, it could quietly stand in for it.
 */
export const provider = (sources: Sources): ConfigProvider.ConfigProvider => {
  const env = new Map(Object.entries(sources.env).filter((entry): entry is [string, string] => entry[1] !== undefined))
  const fromEnv = ConfigProvider.fromMap(env)
  if (sources.file === undefined) return fromEnv
  const fromFile = new Map(
    [...sources.file.entries].filter(([name]) => !env.has(name)).map(([name, { value }]) => [
      name,
      value
    ])
  )
  return fromEnv.pipe(ConfigProvider.orElse(() => ConfigProvider.fromMap(fromFile)))
}

export type Source = "env" | "file" | "default"

export const lookup = (
  sources: Sources,
  name: string
): { readonly source: Source; readonly value: string | undefined } => {
  const fromEnv = sources.env[name]
  if (fromEnv !== undefined) return { source: "env", value: fromEnv }
  const fromFile = sources.file?.entries.get(name)
  return fromFile === undefined ? { source: "default", value: undefined } : { source: "file", value: fromFile.value }
}
