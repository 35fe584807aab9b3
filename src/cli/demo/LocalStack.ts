/**
 * The local stack for the demo, through the stack's own command (`scripts/stack.ts`) in child
 * processes, as the test suite's global setup does: `up` starts what is neither given nor already
 * answering, and when the demo's scope closes exactly the services this demo started are stopped.
 */
import { Data, Effect, Ref, type Scope } from "effect"
import { spawn } from "node:child_process"
import * as path from "node:path"
import { projectRoot } from "../../../scripts/stack/layout.ts"
import * as ConfigFile from "../../config/ConfigFile.ts"

export class StackError extends Data.TaggedError("StackError")<{ readonly message: string }> {}

/** The services the stack starts, each with the variable that names the user's own instead. */
const services = { kafka: "KAFKA_BROKERS", postgres: "DATABASE_URL", jaeger: "OTEL_EXPORTER_OTLP_ENDPOINT" } as const

/** What `stack up` answers with: the stack's addresses. */
const stackVariables = [
  "KAFKA_BROKERS",
  "DATABASE_URL",
  "CLICKHOUSE_URL",
  "CLICKHOUSE_PATH",
  "OTEL_EXPORTER_OTLP_ENDPOINT",
  "JAEGER_QUERY_URL"
] as const

export interface LocalStack {
  /** The stack's addresses for the variables the user did not set: the settings' environment beneath theirs. */
  readonly env: Readonly<Record<string, string>>
  /** Services this demo started; they are stopped when its scope closes. */
  readonly started: ReadonlyArray<string>
  /** One line for the screen: what was used, started, or found running. */
  readonly report: string
}

const stackScript = path.join(projectRoot, "scripts", "stack.ts")

/** Runs `scripts/stack.ts <args>`; its progress goes straight to standard error. Interrupting it stops it. */
const stack = (args: ReadonlyArray<string>, env: NodeJS.ProcessEnv): Effect.Effect<string, StackError> =>
  Effect.async((resume) => {
    const child = spawn(process.execPath, ["--import", "tsx", stackScript, ...args], {
      cwd: projectRoot,
      env,
      stdio: ["ignore", "pipe", "inherit"]
    })
    let output = ""
    child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()))
    child.once(
      "error",
      (error) => resume(Effect.fail(new StackError({ message: `stack ${args[0]}: ${error.message}` })))
    )
    child.once("exit", (code, signal) =>
      resume(
        code === 0 ? Effect.succeed(output) : Effect.fail(
          new StackError({ message: `stack ${args.join(" ")} failed (${signal ?? `exit code ${code}`}), see above` })
        )
      ))
    return Effect.async<void>((stopped) => {
      if (child.exitCode !== null || child.signalCode !== null) return stopped(Effect.void)
      child.once("exit", () => stopped(Effect.void))
      child.kill("SIGTERM")
    })
  })

/** Services whose recorded process runs (`stack status`): the ones a `stack down` would stop. */
const running = (env: NodeJS.ProcessEnv) =>
  stack(["status", "--json"], env).pipe(
    Effect.flatMap((output) =>
      Effect.try({
        try: () =>
          new Set(
            (JSON.parse(output) as ReadonlyArray<{ readonly service: string; readonly pid?: number }>)
              .filter((service) => service.pid !== undefined)
              .map((service) => service.service)
          ),
        catch: () => new StackError({ message: `stack status answered something unexpected: ${output}` })
      })
    )
  )

const startedSince = (env: NodeJS.ProcessEnv, before: ReadonlySet<string>) =>
  Effect.map(running(env), (now) => [...now].filter((service) => !before.has(service)))

const parseEnv = (output: string): Record<string, string> =>
  Object.fromEntries(
    output.split("\n").filter((line) => line.includes("=")).map((
      line
    ) => [line.slice(0, line.indexOf("=")), line.slice(line.indexOf("=") + 1)])
  )

/**
 * The stack the demo runs on. Addresses the user gave (environment or config file) win and are only
 * probed by `up`; when they name every service, the stack is not touched at all. `onStop` is told
 * which services are about to be stopped.
 */
export const bringUp = (
  sources: ConfigFile.Sources,
  onStop: (services: ReadonlyArray<string>) => void
): Effect.Effect<LocalStack, StackError, Scope.Scope> =>
  Effect.gen(function*() {
    const given: Record<string, string> = {}
    for (const name of stackVariables) {
      const { value } = ConfigFile.lookup(sources, name)
      if (value !== undefined && value !== "") given[name] = value
    }
    const missing = Object.entries(services).filter(([, variable]) => given[variable] === undefined)
    if (missing.length === 0) {
      return {
        env: {},
        started: [],
        report: `not used: ${Object.values(services).join(", ")} are given; started nothing`
      }
    }
    // Given in the config file, they are for `up` to probe as well.
    const env = { ...process.env, ...given }
    const before = yield* running(env)
    const startedHere = yield* Ref.make<ReadonlyArray<string> | undefined>(undefined)
    // Registered before `up` runs, so that an `up` that fails or is interrupted half-way is undone too.
    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        const started = (yield* Ref.get(startedHere)) ?? (yield* startedSince(env, before))
        if (started.length === 0) return
        onStop(started)
        yield* stack(["down", ...started], env)
      }).pipe(
        Effect.catchAll((error) => Effect.sync(() => process.stderr.write(`sentinel demo: ${error.message}\n`)))
      )
    )
    const answered = parseEnv(yield* stack(["up"], env))
    const started = yield* startedSince(env, before)
    yield* Ref.set(startedHere, started)
    const found = missing.map(([service]) => service).filter((service) => !started.includes(service))
    return {
      env: Object.fromEntries(Object.entries(answered).filter(([name]) => given[name] === undefined)),
      started,
      report: started.length === 0
        ? `${found.join(", ")} already running; started nothing`
        : `started ${started.join(", ")} (stopped again when the demo ends)` +
          (found.length === 0 ? "" : `; ${found.join(", ")} already running`)
    }
  })
