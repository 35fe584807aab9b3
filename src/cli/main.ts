/**
 * `sentinel`: the command line. Each command reads the one typed configuration from the
 * environment and the optional config file (`--config path` or SENTINEL_CONFIG_FILE; the
 * environment wins); a bad value stops it with one line naming the variable and what it expects.
 *
 * Exit codes: 0 done, 1 failed at run time, 2 bad usage, 78 bad configuration (EX_CONFIG).
 */
import { Cause, ConfigError, Effect, Exit, Option } from "effect"
import { parseArgs } from "node:util"
import { describeConfigError, load, variableNames } from "../config/Config.ts"
import * as ConfigFile from "../config/ConfigFile.ts"
import * as Logging from "../telemetry/Logging.ts"
import { breakerCommand } from "./breaker.ts"
import type { Command, OptionValues } from "./Command.ts"
import { demoCommand } from "./demo.ts"
import { dlqCommand } from "./dlq.ts"
import { healthCommand } from "./health.ts"
import { migrateCommand } from "./migrate.ts"
import { outboxCommand } from "./outbox.ts"
import { produceCommand } from "./produce.ts"
import { reconcileCommand } from "./reconcile.ts"
import { runCommand } from "./run.ts"
import { UsageError } from "./UsageError.ts"

const commands: Record<string, Command> = {
  run: runCommand,
  migrate: migrateCommand,
  produce: produceCommand,
  health: healthCommand,
  breaker: breakerCommand,
  dlq: dlqCommand,
  outbox: outboxCommand,
  reconcile: reconcileCommand,
  demo: demoCommand
}

const usage = () =>
  [
    "usage: sentinel <command> [options]",
    "",
    ...Object.entries(commands).map(([name, command]) => `  ${name.padEnd(10)} ${command.summary}`),
    "",
    "sentinel <command> --help shows a command's options. Configuration comes from the environment and from",
    "the file named by --config FILE (any command) or SENTINEL_CONFIG_FILE; the environment wins (see README)."
  ].join("\n")

/** A name in the config file that Sentinel does not read is most likely a typo: said, not fatal. */
const warnIgnored = (sources: ConfigFile.Sources) =>
  Effect.sync(() => {
    const known = new Set(variableNames)
    for (const [name, { line }] of sources.file?.entries ?? []) {
      if (!known.has(name)) {
        process.stderr.write(
          `sentinel: config file ${sources.file!.path} line ${line}: ${name} is not a Sentinel setting (ignored)\n`
        )
      }
    }
  })

const main = async (argv: ReadonlyArray<string>): Promise<number> => {
  const [name, ...rest] = argv
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    process.stdout.write(`${usage()}\n`)
    return name === undefined ? 2 : 0
  }
  const command = commands[name]
  if (command === undefined) {
    process.stderr.write(`sentinel: unknown command "${name}"\n${usage()}\n`)
    return 2
  }
  let values: OptionValues
  let positionals: ReadonlyArray<string>
  try {
    ;({ positionals, values } = parseArgs({
      args: [...rest],
      options: { ...command.options, config: { type: "string" }, help: { type: "boolean", short: "h" } },
      allowPositionals: command.allowPositionals ?? false
    }))
  } catch (error) {
    process.stderr.write(`sentinel ${name}: ${(error as Error).message}\nusage: ${command.usage}\n`)
    return 2
  }
  if (values.help === true) {
    process.stdout.write(`usage: ${command.usage}\n`)
    return 0
  }
  const program = Effect.gen(function*() {
    const sources = yield* ConfigFile.resolve(typeof values.config === "string" ? values.config : undefined)
    const settings = yield* Effect.withConfigProvider(load, ConfigFile.provider(sources))
    yield* warnIgnored(sources)
    return yield* command.run(settings, values, positionals).pipe(
      Effect.provide(Logging.layer(settings.logLevel)),
      Effect.provideService(ConfigFile.ConfigSources, sources)
    )
  })
  const exit = await Effect.runPromiseExit(program)
  if (Exit.isSuccess(exit)) return exit.value
  const failure = Cause.failureOption(exit.cause)
  if (Option.isSome(failure) && failure.value instanceof ConfigFile.ConfigFileError) {
    process.stderr.write(`sentinel: ${failure.value.message}\n`)
    return 78
  }
  if (Option.isSome(failure) && ConfigError.isConfigError(failure.value)) {
    process.stderr.write(`sentinel: invalid configuration\n${describeConfigError(failure.value)}\n`)
    return 78
  }
  if (Option.isSome(failure) && failure.value instanceof UsageError) {
    process.stderr.write(`sentinel ${name}: ${failure.value.message}\nusage: ${command.usage}\n`)
    return 2
  }
  const error = Option.getOrElse(failure, () => Cause.squash(exit.cause))
  process.stderr.write(`sentinel ${name}: ${error instanceof Error ? explain(error) : Cause.pretty(exit.cause)}\n`)
  return 1
}

/**
 * An error's message with its causes' (a client's "failed to connect" says little without the
 * server's reason: a refused certificate, a TLS-only server, a wrong password).
 */
const explain = (error: Error): string => {
  const cause: unknown = error.cause
  return cause instanceof Error && !error.message.includes(cause.message)
    ? `${error.message}: ${explain(cause)}`
    : error.message
}

main(process.argv.slice(2)).then((code) => process.exit(code))
