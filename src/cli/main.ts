/**
 * `sentinel`: the command line. Each command reads the one typed configuration from the
 * environment; a bad value stops it with one line naming the variable and what it expects.
 *
 * Exit codes: 0 done, 1 failed at run time, 2 bad usage, 78 bad configuration (EX_CONFIG).
 */
import { Cause, ConfigError, Effect, Exit, Logger, LogLevel, Option } from "effect"
import { parseArgs, type ParseArgsConfig } from "node:util"
import { describeConfigError, load, type SentinelSettings } from "../config/Config.ts"
import { migrate } from "./migrate.ts"
import { produceCommand } from "./produce.ts"
import { runDaemon } from "./run.ts"
import { UsageError } from "./UsageError.ts"

interface Command {
  readonly summary: string
  readonly usage: string
  readonly options: NonNullable<ParseArgsConfig["options"]>
  readonly run: (
    settings: SentinelSettings,
    values: Record<string, string | boolean | undefined>
  ) => Effect.Effect<number, unknown>
}

const commands: Record<string, Command> = {
  run: {
    summary: "run the daemon: consume, persist, relay the outbox",
    usage: "sentinel run",
    options: {},
    run: (settings) => runDaemon(settings)
  },
  migrate: {
    summary: "apply the PostgreSQL and ClickHouse migrations (safe to repeat)",
    usage: "sentinel migrate",
    options: {},
    run: (settings) => Effect.as(migrate(settings), 0)
  },
  produce: {
    summary: "publish realistic detector output to Sentinel's topics",
    usage:
      "sentinel produce --count N [--rate R] [--malformed F] [--duplicates F] [--alert-share F] [--seed S] [--start T] [--first N]\n" +
      "  --count N         records to publish (re-sent duplicates included)\n" +
      "  --rate R          records per second (default: as fast as possible)\n" +
      "  --malformed F     share of malformed records, 0..1 (default 0.01)\n" +
      "  --duplicates F    share of re-sent detection results, 0..1 (default 0.01)\n" +
      "  --alert-share F   share of results at MEDIUM or above, 0..1 (default 0.20)\n" +
      "  --seed S          seed: the same seed and start publish the same records (default 1)\n" +
      "  --start T         when the first transaction happened, ISO-8601; one per second after (default: now)\n" +
      "  --first N         number of the first record: its transaction id is T<N>, so runs can follow one another (default 0)",
    options: {
      count: { type: "string" },
      rate: { type: "string" },
      malformed: { type: "string" },
      duplicates: { type: "string" },
      "alert-share": { type: "string" },
      seed: { type: "string" },
      start: { type: "string" },
      first: { type: "string" }
    },
    run: (settings, values) => produceCommand(settings, values)
  }
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
  let values: Record<string, string | boolean | undefined>
  try {
    values =
      parseArgs({ args: [...rest], options: { ...command.options, help: { type: "boolean", short: "h" } } }).values
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
    return yield* command.run(settings, values)
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
