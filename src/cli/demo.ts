/**
 * `sentinel demo` (`npm run demo`): Sentinel on embedded defaults in one command. It brings up the
 * local stack (what is neither given nor already running), migrates both stores, runs the daemon and
 * a steady producer of realistic detector output in this process, and shows their progress until
 * Ctrl-C or `--duration`; then it lets the daemon catch up and stop cleanly, says what was persisted
 * and whether every produced record is accounted for, and stops the stack services it started.
 *
 * The daemon runs in this process because chDB does: a chDB folder belongs to one process, so the
 * view's ClickHouse queries go through the daemon's own client.
 */
import { PgClient } from "@effect/sql-pg"
import { Cause, Context, Deferred, Duration, Effect, Either, Exit, Fiber, Layer, LogLevel, Option } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { home } from "../../scripts/stack/layout.ts"
import { load, type SentinelSettings } from "../config/Config.ts"
import * as ConfigFile from "../config/ConfigFile.ts"
import { ClickHouse } from "../sinks/clickhouse/ClickHouse.ts"
import { pgConnection } from "../sinks/postgres/PgConnection.ts"
import type { Health } from "../telemetry/Health.ts"
import * as Logging from "../telemetry/Logging.ts"
import type { Command, OptionValues } from "./Command.ts"
import * as LocalStack from "./demo/LocalStack.ts"
import * as Observation from "./demo/Observation.ts"
import * as ProgressView from "./demo/ProgressView.ts"
import * as SteadyProducer from "./demo/SteadyProducer.ts"
import { type Drained, summary } from "./demo/Summary.ts"
import { migrate } from "./migrate.ts"
import { daemon, type RunningDaemon, storesLayer } from "./run.ts"
import { UsageError } from "./UsageError.ts"

interface DemoOptions {
  readonly rate: number
  readonly duration: Duration.Duration | undefined
  readonly alertShare: number | undefined
}

const readDemoOptions = (values: OptionValues): DemoOptions => {
  const number = (name: string, valid: (n: number) => boolean, expects: string) => {
    const raw = values[name]
    if (raw === undefined) return undefined
    const parsed = Number(raw)
    if (typeof raw !== "string" || raw.trim() === "" || !valid(parsed)) {
      throw new UsageError(`--${name} expects ${expects}, got "${String(raw)}"`)
    }
    return parsed
  }
  const positive = (n: number) => Number.isFinite(n) && n > 0
  const seconds = number("duration", positive, "a number of seconds above 0")
  return {
    rate: number("rate", positive, "a number of records per second above 0") ?? 2000,
    duration: seconds === undefined ? undefined : Duration.seconds(seconds),
    alertShare: number("alert-share", (n) => Number.isFinite(n) && n >= 0 && n <= 1, "a share between 0 and 1")
  }
}

/** The terminal, or whatever standard output is. */
interface Screen {
  readonly interactive: boolean
  /** Lines printed once, below whatever was drawn before. */
  readonly print: (lines: ReadonlyArray<string>) => void
  /** The live view: redrawn in place on a terminal; never called otherwise. */
  readonly redraw: (lines: ReadonlyArray<string>) => void
}

const makeScreen = (): Screen => {
  let drawn = 0
  return {
    interactive: process.stdout.isTTY === true,
    print: (lines) => {
      drawn = 0
      process.stdout.write(`${lines.join("\n")}\n`)
    },
    redraw: (lines) => {
      // Lines that wrapped or scrolled away could not be moved back over: clip to the window.
      const width = process.stdout.columns || 120
      const visible = lines.slice(0, Math.max(1, (process.stdout.rows || 50) - 1))
        .map((line) => (line.length < width ? line : `${line.slice(0, width - 2)}…`))
      process.stdout.write(`${drawn > 0 ? `\x1b[${drawn}A` : ""}\x1b[0J${visible.join("\n")}\n`)
      drawn = visible.length
    }
  }
}

const logFile = path.join(home, "demo.log")

/**
 * Everything logs to standard error (src/telemetry/Logging.ts: the daemon, kafkajs, OpenTelemetry).
 * On a terminal the view owns the screen, so for the demo's lifetime standard error is a log file;
 * otherwise the logs stay on standard error, warnings and errors only.
 */
const routeLogs = (screen: Screen, level: LogLevel.LogLevel) =>
  screen.interactive
    ? Effect.acquireRelease(
      Effect.sync(() => {
        fs.mkdirSync(path.dirname(logFile), { recursive: true })
        const fd = fs.openSync(logFile, "a")
        const write = process.stderr.write
        process.stderr.write = ((chunk: string | Uint8Array) => {
          if (typeof chunk === "string") fs.writeSync(fd, chunk)
          else fs.writeSync(fd, chunk)
          return true
        }) as typeof process.stderr.write
        return { fd, write }
      }),
      ({ fd, write }) =>
        Effect.sync(() => {
          process.stderr.write = write
          fs.closeSync(fd)
        })
    ).pipe(Effect.as(Layer.empty))
    : Effect.succeed(Logging.layer(LogLevel.greaterThan(level, LogLevel.Warning) ? level : LogLevel.Warning))

/**
 * SIGINT and SIGTERM: the first asks the demo to stop cleanly, a second one forces it out (130).
 * npm and tsx pass a terminal's Ctrl-C on to this process too, so what comes within a moment of the
 * first is the same Ctrl-C.
 */
const handleSignals = (onFirst: (signal: NodeJS.Signals) => void, force: () => void) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      let first: number | undefined
      const handler = (signal: NodeJS.Signals) => {
        if (first === undefined) {
          first = Date.now()
          onFirst(signal)
        } else if (Date.now() - first > 500) {
          force()
        }
      }
      process.on("SIGINT", handler)
      process.on("SIGTERM", handler)
      return handler
    }),
    (handler) =>
      Effect.sync(() => {
        process.off("SIGINT", handler)
        process.off("SIGTERM", handler)
      })
  )

/** The first completion of `stopRequested` wins over `effect`, which is then interrupted. */
const unlessStopped = <A, E, R>(effect: Effect.Effect<A, E, R>, stopRequested: Deferred.Deferred<string>) =>
  Effect.raceFirst(Effect.map(effect, Option.some), Effect.as(Deferred.await(stopRequested), Option.none<A>()))

/**
 * Waits until the daemon has caught up with everything published before `since`: a Kafka probe
 * begun after `since` finds both consumer groups without lag, and an outbox probe begun after that
 * one ended finds no backlog (the daemon's own health probes, every SENTINEL_HEALTH_INTERVAL_MS).
 */
const catchUp = (health: Health, since: number, timeout: Duration.Duration, onWait: (behind: string) => void) =>
  Effect.gen(function*() {
    const deadline = Date.now() + Duration.toMillis(timeout)
    let caughtUpAt: number | undefined
    let behind = "nothing probed yet"
    while (Date.now() < deadline) {
      const { kafka, outbox } = (yield* health.readiness).components
      const lag = kafka.lag as Readonly<Record<string, number>> | undefined
      if (
        caughtUpAt === undefined && kafka.status === "up" && (kafka.checkedAt ?? 0) > since && lag !== undefined &&
        Object.values(lag).every((records) => records === 0)
      ) caughtUpAt = kafka.checkedAt! + (kafka.latencyMs ?? 0)
      if (caughtUpAt !== undefined && (outbox.checkedAt ?? 0) > caughtUpAt && outbox.pending === 0) {
        return { caughtUp: true } satisfies Drained
      }
      behind = `consumer lag ${
        lag === undefined ? "unknown" : Object.entries(lag).map(([group, n]) => `${group} ${n}`).join(", ")
      }, outbox backlog ${String(outbox.pending ?? "unknown")}`
      onWait(behind)
      yield* Effect.sleep("250 millis")
    }
    return { caughtUp: false, behind: `${behind} when the demo stopped waiting` } satisfies Drained
  })

const catchUpTimeout = Duration.seconds(60)
const producerStopTimeout = Duration.seconds(30)

const urlHost = (host: string) => (host.includes(":") ? `[${host}]` : host)

/** The daemon, the producer and the view, in the stores' context; returns the exit code. */
const runDemo = (
  settings: SentinelSettings,
  options: DemoOptions,
  screen: Screen,
  stopRequested: Deferred.Deferred<string>,
  jaegerQueryUrl: string | undefined
) =>
  Effect.gen(function*() {
    // PostgreSQL as its owner: the daemon's role may not read the audit log.
    const observerPool = yield* Layer.build(
      PgClient.layer({ ...pgConnection(settings.postgres), maxConnections: 2, applicationName: "sentinel demo" })
    )
    const observer = Observation.make(Context.get(observerPool, PgClient.PgClient), yield* ClickHouse)
    const stored = Effect.all({ postgres: observer.postgresCounts, clickhouse: observer.clickhouseCounts })
    const before = yield* stored
    const last = yield* Effect.orElseSucceed(observer.lastMessageNumber, () => undefined)

    const stop = yield* Deferred.make<void>()
    const running = yield* Deferred.make<RunningDaemon>()
    const daemonFiber = yield* Effect.fork(daemon(settings, stop, running))
    const started = yield* unlessStopped(
      Effect.raceFirst(Deferred.await(running), Effect.flatMap(Fiber.join(daemonFiber), () => Effect.never)),
      stopRequested
    )
    if (Option.isNone(started)) {
      yield* Deferred.succeed(stop, undefined)
      yield* Fiber.join(daemonFiber)
      screen.print(["sentinel demo: stopped before it ran"])
      return 130
    }
    const { health, httpPort } = started.value
    const startedAt = Date.now()
    const interval = screen.interactive ? 1000 : 5000
    // The non-terminal view answers the queries every other line.
    const answersEvery = screen.interactive ? 5000 : 10_000
    screen.print([
      "",
      ...ProgressView.whereToLook({
        traces: jaegerQueryUrl !== undefined
          ? `Jaeger UI ${jaegerQueryUrl}/search?service=${encodeURIComponent(settings.telemetry.serviceName)}`
          : settings.telemetry.otlpEndpoint !== undefined
          ? `exported to ${settings.telemetry.otlpEndpoint} (JAEGER_QUERY_URL would name the Jaeger UI here)`
          : "not exported (OTEL_EXPORTER_OTLP_ENDPOINT is unset)",
        metrics: httpPort === undefined
          ? undefined
          : `http://${urlHost(settings.http.host)}:${httpPort}/metrics (and /readyz, /breakers)`,
        logs: screen.interactive
          ? `${logFile} (the daemon's JSON log lines)`
          : "warnings and errors on standard error, as JSON lines",
        queries: Observation.viewQueries,
        answersEvery: `every ${answersEvery / 1000} s`
      }),
      ""
    ])

    const producer = yield* SteadyProducer.start(settings.kafka, {
      rate: options.rate,
      alertShare: options.alertShare,
      first: last === undefined ? 0 : last + 1
    })
    let status = "Ctrl-C stops it and says what was persisted"
    const setStatus = (next: string) => {
      if (!screen.interactive && next !== status) screen.print([`sentinel demo: ${next}`])
      status = next
    }
    const observe = () => observer.observe(health, producer.published(), Date.now() - startedAt)
    const progress = yield* Effect.fork(Effect.gen(function*() {
      let previous: Observation.Observation | undefined
      let answers: { at: number; answers: ReadonlyArray<Observation.Answer> } | undefined
      while (true) {
        if (!screen.interactive) yield* Effect.sleep(interval)
        const now = yield* observe()
        const answersDue = answers === undefined || now.elapsedMs - answers.at >= answersEvery
        if (answersDue) answers = { at: now.elapsedMs, answers: yield* observer.answers }
        const answered = answers === undefined ? [] : [
          `ClickHouse, over the materialized views, at ${ProgressView.clock(answers.at)}:`,
          ...ProgressView.answerLines(answers.answers)
        ]
        if (screen.interactive) {
          screen.redraw([...ProgressView.frame(now, previous, options.rate, status), "", ...answered])
          yield* Effect.sleep(interval)
        } else {
          screen.print([ProgressView.line(now, previous, options.rate), ...(answersDue ? answered : [])])
        }
        previous = now
      }
    }))

    const reason = yield* Effect.raceAll([
      Effect.map(Deferred.await(stopRequested), (signal) => signal),
      options.duration === undefined
        ? Effect.never
        : Effect.as(Effect.sleep(options.duration), `--duration ${Duration.format(options.duration)} elapsed`),
      Effect.as(Fiber.await(daemonFiber), "the daemon stopped by itself")
    ])

    setStatus("stopping: the producer finishes its last slice")
    const produced = yield* producer.stop.pipe(
      Effect.mapError((error) => error.message),
      // A broker that stopped answering would hold the slice for as long as kafkajs retries.
      Effect.timeoutFail({ duration: producerStopTimeout, onTimeout: () => "its last slice did not finish in time" }),
      Effect.either
    )
    const daemonUp = Option.isNone(yield* Fiber.poll(daemonFiber))
    const drained: Drained = daemonUp
      ? yield* catchUp(health, Date.now(), catchUpTimeout, (behind) => {
        if (screen.interactive) status = `stopping: the daemon catches up (${behind})`
        else setStatus("stopping: the daemon catches up with what was produced")
      })
      : { caughtUp: false, behind: "the daemon stopped by itself" }
    setStatus("stopping: the daemon finishes its batches, commits and relays")
    yield* Deferred.succeed(stop, undefined)
    const daemonExit = yield* Fiber.await(daemonFiber)
    const final = yield* observe()
    yield* Fiber.interrupt(progress)
    if (screen.interactive) screen.redraw(ProgressView.frame(final, undefined, options.rate, "stopped"))
    const after = yield* stored
    screen.print([
      "",
      ...summary({
        elapsedMs: final.elapsedMs,
        reason,
        produced: Either.isRight(produced) ? produced.right : { failed: produced.left },
        durable: final.durable,
        deadLetters: final.deadLetters,
        drained,
        before,
        after,
        answers: yield* observer.answers
      })
    ])
    if (Exit.isFailure(daemonExit)) {
      screen.print([`sentinel demo: the daemon failed: ${Cause.pretty(daemonExit.cause)}`])
      return 1
    }
    return 0
  }).pipe(Effect.scoped, Effect.provide(storesLayer(settings)))

const demo = (options: DemoOptions) =>
  Effect.gen(function*() {
    const sources = Option.getOrElse(
      yield* Effect.serviceOption(ConfigFile.ConfigSources),
      (): ConfigFile.Sources => ({ env: process.env, file: undefined })
    )
    const screen = makeScreen()
    const stopRequested = yield* Deferred.make<string>()
    let leftRunning: ReadonlyArray<string> = []
    yield* handleSignals(
      (signal) => Deferred.unsafeDone(stopRequested, Effect.succeed(signal === "SIGINT" ? "Ctrl-C" : signal)),
      () => {
        process.stdout.write(
          "\nsentinel demo: forced to stop; the batches in flight are redone on the next start" +
            (leftRunning.length === 0 ? "\n" : `; left running: ${leftRunning.join(", ")} (npm run stack -- down)\n`)
        )
        process.exit(130)
      }
    )
    screen.print(["sentinel demo: bringing up the local stack…"])
    const ready = yield* unlessStopped(
      Effect.gen(function*() {
        const stack = yield* LocalStack.bringUp(
          sources,
          (services) => screen.print([`local stack: stopping ${services.join(", ")}, which this demo started`])
        )
        leftRunning = stack.started
        screen.print([`local stack: ${stack.report}`])
        // The stack's addresses under the user's settings: what they gave wins.
        const settings = yield* Effect.withConfigProvider(
          load,
          ConfigFile.provider({ ...sources, env: { ...stack.env, ...sources.env } })
        )
        const logging = yield* routeLogs(screen, settings.logLevel)
        yield* Effect.provide(migrate(settings), logging)
        screen.print(["sentinel demo: migrated both stores; starting the daemon and the producer…"])
        const jaegerQueryUrl = stack.env.JAEGER_QUERY_URL ?? ConfigFile.lookup(sources, "JAEGER_QUERY_URL").value
        return { settings, logging, jaegerQueryUrl }
      }),
      stopRequested
    )
    if (Option.isNone(ready)) {
      screen.print(["sentinel demo: stopped before it ran"])
      return 130
    }
    const { jaegerQueryUrl, logging, settings } = ready.value
    return yield* runDemo(settings, options, screen, stopRequested, jaegerQueryUrl).pipe(Effect.provide(logging))
  }).pipe(Effect.scoped)

export const demoCommand: Command = {
  summary: "try Sentinel in one command: local stack, daemon, producer, live progress",
  usage: "sentinel demo [--rate R] [--duration S] [--alert-share F]\n" +
    "  --rate R          records per second the demo's producer publishes (default 2000)\n" +
    "  --duration S      stop by itself after S seconds (default: run until Ctrl-C)\n" +
    "  --alert-share F   share of detection results at MEDIUM or above, 0..1 (default 0.20)\n" +
    "Brings up the local stack (what the environment does not name and is not running yet), migrates,\n" +
    "runs the daemon and a producer in this process and shows their progress. Ctrl-C stops it all cleanly\n" +
    "and says what was persisted; a second Ctrl-C forces it out (exit code 130).",
  options: { rate: { type: "string" }, duration: { type: "string" }, "alert-share": { type: "string" } },
  run: (_settings, values) =>
    Effect.try({ try: () => readDemoOptions(values), catch: (error) => error }).pipe(Effect.flatMap(demo))
}
