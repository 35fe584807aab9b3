/**
 * `sentinel`: the command line. Each command reads the one typed configuration from the
 * environment; a bad value stops it with one line naming the variable and what it expects.
 *
 * Exit codes: 0 done, 1 failed at run time, 2 bad usage, 78 bad configuration (EX_CONFIG).
 */
import { Cause, ConfigError, Effect, Exit, Logger, LogLevel, Option } from "effect"
import { parseArgs } from "node:util"
import { describeConfigError, load } from "../config/Config.ts"
import type { Command, OptionValues } from "./Command.ts"
import { migrateCommand } from "./migrate.ts"
import { produceCommand } from "./produce.ts"
import { runCommand } from "./run.ts"
import { UsageError } from "./UsageError.ts"

const commands: Record<string, Command> = {
  run: runCommand,
  migrate: migrateCommand,
  produce: produceCommand
}

const usage = () =>
  [
    "usage: sentinel <command> [options]",
    "",
    ...Object.entries(commands).map(([name, command]) => `  ${name.padEnd(10)} ${command.summary}`),
    "",
    "sentinel <command> --help shows a command's options. Configuration comes from the environment (see README)."
  ].join("\n")

const logLevel = LogLevel.fromLiteral(
  (["All", "Trace", "Debug", "Info", "Warning", "Error", "Fatal", "None"] as const).find(
    (level) => level.toLowerCase() === (process.env.SENTINEL_LOG_LEVEL ?? "info").toLowerCase()
  ) ?? "Info"
)

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
      options: { ...command.options, help: { type: "boolean", short: "h" } },
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
    const settings = yield* load
    return yield* command.run(settings, values, positionals)
  }).pipe(
    Effect.provide(Logger.json),
    Logger.withMinimumLogLevel(logLevel)
  )
  const exit = await Effect.runPromiseExit(program)
  if (Exit.isSuccess(exit)) return exit.value
  const failure = Cause.failureOption(exit.cause)
  if (Option.isSome(failure) && ConfigError.isConfigError(failure.value)) {
    process.stderr.write(`sentinel: invalid configuration\n${describeConfigError(failure.value)}\n`)
    return 78
  }
  if (Option.isSome(failure) && failure.value instanceof UsageError) {
    process.stderr.write(`sentinel ${name}: ${failure.value.message}\nusage: ${command.usage}\n`)
    return 2
  }
  const error = Option.getOrElse(failure, () => Cause.squash(exit.cause))
  process.stderr.write(`sentinel ${name}: ${error instanceof Error ? error.message : Cause.pretty(exit.cause)}\n`)
  return 1
}

main(process.argv.slice(2)).then((code) => process.exit(code))
