/**
 * Where the outbox relay's time goes: a backlog of N alerts (the benchmark's records, every detection
 * an alert) written to a fresh PostgreSQL database by the AlertWriter (untimed), then relayed into a fresh chDB folder with claim, deliver and acknowledge
 * timed apart, and with `run` as the daemon runs it.
 *
 *   node --import tsx scripts/bench/outboxRelaySteps.ts [--alerts N] [--batch B] [--mode steps|run|none]
 *     [--concurrency C] [--keep | --reuse DATABASE]
 *
 * `steps` calls claim → deliver → acknowledge in turn and times each; `run` times the relay's own loop
 * (`run`, with whatever overlap it does) until the backlog is empty; `none` only writes the backlog
 * (with `--keep`, to study the relay's statements on it by hand). `--keep` leaves the database in place;
 * `--reuse` takes such a database again, its outbox marked unclaimed and unpublished once more, and
 * keeps it (writing 50,000 alerts takes longer than relaying them). Uses DATABASE_URL from the
 * environment or the stack's stack.env; prints one JSON line; drops the database and removes the folder.
 */
import { PgClient } from "@effect/sql-pg"
import { Deferred, Effect, Fiber, Layer, ManagedRuntime, Option, Redacted } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { parseArgs } from "node:util"
import pg from "pg"
import * as OutboxRelay from "../../src/outbox/OutboxRelay.ts"
import { route, topicKinds } from "../../src/routing/Router.ts"
import { ClickHouse, makeClient } from "../../src/sinks/clickhouse/ClickHouse.ts"
import { migrateClickHouse } from "../../src/sinks/clickhouse/Migrations.ts"
import * as AlertWriter from "../../src/sinks/postgres/AlertWriter.ts"
import { migratePostgres } from "../../src/sinks/postgres/Migrations.ts"
import { connectAs } from "../../src/sinks/postgres/WriterRole.ts"
import { envFile } from "../stack/layout.ts"
import { uniqueName } from "./deployment.ts"
import { type Dataset, recordBatches } from "./records.ts"

const { values } = parseArgs({
  options: {
    alerts: { type: "string" },
    batch: { type: "string" },
    mode: { type: "string" },
    keep: { type: "boolean" },
    reuse: { type: "string" },
    concurrency: { type: "string" }
  }
})
/** Written, or (with --reuse) found in the outbox. */
let alerts = Number(values.alerts ?? 50_000)
const batchSize = Number(values.batch ?? 5_000)
/** Claims `run` keeps in flight; the relay's default when not given. */
const concurrency = values.concurrency === undefined ? {} : { concurrency: Number(values.concurrency) }
const mode = values.mode === "run" || values.mode === "none" ? values.mode : "steps"

const adminUrl = process.env.DATABASE_URL ??
  /^DATABASE_URL=(.*)$/m.exec(fs.readFileSync(envFile, "utf8"))?.[1]
if (adminUrl === undefined) throw new Error("DATABASE_URL is not set and .sentinel/stack.env names none")

/**
 * CPU seconds spent so far by the server processes serving `database` (read from /proc: the stack's
 * PostgreSQL runs on this machine), per process id.
 */
const serverCpu = async (database: string): Promise<Map<number, number>> => {
  const admin = new pg.Client({ connectionString: adminUrl })
  await admin.connect()
  try {
    const { rows } = await admin.query<{ pid: number }>(
      "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
      [database]
    )
    const cpu = new Map<number, number>()
    for (const { pid } of rows) {
      try {
        // Fields 14 and 15 of /proc/<pid>/stat (after the command in parentheses): user and system ticks.
        const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8")
        const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
        cpu.set(pid, (Number(fields[11]) + Number(fields[12])) / 100)
      } catch {
        // A server elsewhere, or the process is gone: not counted.
      }
    }
    return cpu
  } finally {
    await admin.end()
  }
}

const cpuSince = (before: Map<number, number>, after: Map<number, number>): number =>
  [...after].reduce((sum, [pid, seconds]) => sum + seconds - (before.get(pid) ?? 0), 0)

const withAdmin = async (statement: string) => {
  const admin = new pg.Client({ connectionString: adminUrl })
  await admin.connect()
  try {
    await admin.query(statement)
  } finally {
    await admin.end()
  }
}

/** The benchmark's records with every detection an alert, as the pipeline batches them. */
const alertBatches = (count: number) => {
  const data: Dataset = {
    // Detections are most of the records; enough of them for `count` alerts, and the rest unused.
    count: count * 2,
    seed: 1,
    alertShare: 1,
    start: new Date().toISOString(),
    topics: { detections: "d", metrics: "m", transactions: "t", audits: "a" },
    partitions: 6
  }
  return recordBatches(data, 5_000)
}

const main = async () => {
  if (values.reuse !== undefined && !/^relay_steps_\w+$/.test(values.reuse)) {
    throw new Error(`--reuse takes a database this script made (relay_steps_…), not "${values.reuse}"`)
  }
  const name = values.reuse ?? uniqueName("relay_steps")
  // Identifiers cannot be bound; the name is generated here or checked above.
  if (values.reuse === undefined) await withAdmin(`CREATE DATABASE ${name}`)
  const url = new URL(adminUrl)
  url.pathname = `/${name}`
  const dbUrl = Redacted.make(url.toString())
  const folder = fs.mkdtempSync(path.join(os.tmpdir(), "sentinel-relay-steps-"))
  const clickhouse = makeClient({ _tag: "Embedded", path: folder })
  const runtime = ManagedRuntime.make(
    Layer.mergeAll(AlertWriter.layer(), OutboxRelay.layer({ batchSize, pollInterval: "50 millis", ...concurrency }))
      .pipe(
        Layer.provideMerge(
          Layer.mergeAll(PgClient.layer({ url: connectAs(dbUrl) }), Layer.succeed(ClickHouse, clickhouse))
        )
      )
  )
  try {
    await Effect.runPromise(migratePostgres.pipe(Effect.provide(PgClient.layer({ url: dbUrl, maxConnections: 1 }))))
    await Effect.runPromise(migrateClickHouse(clickhouse))
    if (values.reuse === undefined) {
      const writer = await runtime.runPromise(AlertWriter.AlertWriter)
      const kinds = topicKinds({ detections: "d", metrics: "m", transactions: "t", audits: "a" })
      let written = 0
      for (const records of alertBatches(alerts)) {
        const routed = route(kinds, records)
        const batch = routed.alerts.slice(0, alerts - written)
        written +=
          (await runtime.runPromise(writer.write({ alerts: batch, audits: [], deadLetters: [] }))).alertsCreated
        if (written >= alerts) break
      }
      process.stderr.write(`backlog of ${alerts} alerts written to database ${name}\n`)
    } else {
      const reset = new pg.Client({ connectionString: url.toString() })
      await reset.connect()
      try {
        await reset.query(`UPDATE outbox SET claim_id = NULL, claimed_at = NULL, claim_expires_at = NULL,
          claim_attempts = 0, published_at = NULL`)
        await reset.query("VACUUM FULL outbox")
        await reset.query("ANALYZE outbox")
        alerts = (await reset.query<{ n: number }>("SELECT count(*)::int AS n FROM outbox")).rows[0]!.n
      } finally {
        await reset.end()
      }
    }
    if (mode === "none") {
      process.stdout.write(`${JSON.stringify({ alerts, database: name })}\n`)
      return
    }
    const relay = await runtime.runPromise(OutboxRelay.OutboxRelay)
    const steps = { claim: 0, deliver: 0, acknowledge: 0 }
    const timed = async <A>(step: keyof typeof steps, effect: Effect.Effect<A, unknown>) => {
      const started = performance.now()
      const result = await runtime.runPromise(effect)
      steps[step] += performance.now() - started
      return result
    }
    const serverBefore = await serverCpu(name)
    const started = performance.now()
    const cpuBefore = process.cpuUsage()
    let claims = 0
    if (mode === "steps") {
      for (;;) {
        const claimed = await timed("claim", relay.claim)
        if (Option.isNone(claimed)) break
        claims++
        await timed("deliver", relay.deliver(claimed.value))
        await timed("acknowledge", relay.acknowledge(claimed.value))
      }
    } else {
      const stop = await runtime.runPromise(Deferred.make<void>())
      const running = await runtime.runPromise(Effect.forkDaemon(relay.run(stop)))
      // Polled as the benchmark polls; each look counts the pending rows, so not much more often.
      while ((await runtime.runPromise(relay.backlog)).pending > 0) await new Promise((r) => setTimeout(r, 200))
      await runtime.runPromise(Deferred.succeed(stop, undefined))
      await runtime.runPromise(Fiber.join(running))
    }
    const seconds = (performance.now() - started) / 1000
    const cpu = process.cpuUsage(cpuBefore)
    const serverSeconds = cpuSince(serverBefore, await serverCpu(name))
    const result = await clickhouse.query({
      query: "SELECT count() AS n, uniqExact(outbox_id) AS ids FROM alerts",
      format: "JSONEachRow"
    })
    const [stored] = await result.json<{ n: string; ids: string }>()
    process.stdout.write(
      `${
        JSON.stringify({
          alerts,
          batchSize,
          mode,
          ...concurrency,
          seconds: Number(seconds.toFixed(3)),
          alertsPerSecond: Math.round(alerts / seconds),
          // This process's CPU (JavaScript and chDB), and PostgreSQL's serving it: on a shared machine
          // steadier than the time.
          cpuMsPerThousandAlerts: Number(((cpu.user + cpu.system) / alerts).toFixed(1)),
          postgresCpuMsPerThousandAlerts: Number(((serverSeconds * 1e6) / alerts).toFixed(1)),
          ...(mode === "steps"
            ? { claims, stepsMs: Object.fromEntries(Object.entries(steps).map(([k, v]) => [k, Math.round(v)])) }
            : {}),
          clickhouse: { rows: Number(stored?.n), distinctOutboxIds: Number(stored?.ids) }
        })
      }\n`
    )
  } finally {
    await runtime.dispose()
    await clickhouse.close()
    fs.rmSync(folder, { recursive: true, force: true })
    if (values.keep !== true && values.reuse === undefined) {
      await withAdmin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
    }
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`)
  process.exit(1)
})
