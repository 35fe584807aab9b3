/**
 * `sentinel demo` as a user runs it without a terminal: `node bin/sentinel.js demo` in a child
 * process, on a deployment of the test's own (its own topics, database and chDB folder) on the
 * shared stack, which is already running, so the demo must start and stop nothing of it.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { promisify } from "node:util"
import { afterEach, describe, expect, it, onTestFailed } from "vitest"
import { isAlive, readStarted } from "../../scripts/stack/process.ts"
import {
  clickhouseCounts,
  type Deployment,
  freshDeployment,
  pgQuery,
  sentinel,
  sleep,
  waitFor
} from "../support/daemon.ts"
import { projectRoot, stackEnv } from "../support/services.ts"

const postgresTables = ["fraud_alerts", "user_accounts", "system_audit_log", "outbox", "dead_letters"]
const clickhouseTables = ["transaction_records", "detection_results", "fraud_features", "performance_metrics", "alerts"]

interface Demo {
  readonly child: ChildProcess
  readonly stdout: () => string
  readonly stderr: () => string
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
}

/** The demo as a child process with only the deployment's settings (the test's own stack variables left out). */
const startDemo = (env: Record<string, string>, ...args: Array<string>): Demo => {
  const inherited = Object.fromEntries(
    Object.entries(process.env).filter(([name]) =>
      !/^(KAFKA_|DATABASE_URL|CLICKHOUSE_|SENTINEL_|OTEL_|JAEGER_)/.test(name)
    )
  )
  const child = spawn(process.execPath, [path.join(projectRoot, "bin", "sentinel.js"), "demo", ...args], {
    env: { ...inherited, ...env },
    cwd: projectRoot,
    stdio: ["ignore", "pipe", "pipe"]
  })
  let stdout = ""
  let stderr = ""
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()))
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()))
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal }))
  )
  return { child, stdout: () => stdout, stderr: () => stderr, exited }
}

/** Every process descending from `pid` now, with its command line. */
const descendants = async (pid: number): Promise<Map<number, string>> => {
  const { stdout } = await promisify(execFile)("ps", ["-e", "-o", "pid=,ppid=,args="])
  const children = new Map<number, Array<{ pid: number; args: string }>>()
  for (const line of stdout.split("\n")) {
    const match = /^\s*(\d+)\s+(\d+)\s+(.*)$/.exec(line)
    if (match === null) continue
    const list = children.get(Number(match[2])) ?? []
    list.push({ pid: Number(match[1]), args: match[3]! })
    children.set(Number(match[2]), list)
  }
  const found = new Map<number, string>()
  const visit = (parent: number) => {
    for (const child of children.get(parent) ?? []) {
      found.set(child.pid, child.args)
      visit(child.pid)
    }
  }
  visit(pid)
  return found
}

const commandLine = (pid: number) => {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ").trim()
  } catch {
    return undefined
  }
}

const stackServices = ["kafka", "postgres", "jaeger"]
const stackProcesses = () =>
  stackServices.map((service) => {
    const started = readStarted(service)
    return { service, pid: started?.pid, alive: isAlive(started) }
  })

const progressLine = /^\[\d+:\d\d\] produced ([\d,]+) .*durable alerts ([\d,]+) .*durable analytics ([\d,]+) /gm
const progressLines = (output: string) =>
  [...output.matchAll(progressLine)].map((match) => ({
    produced: Number(match[1]!.replaceAll(",", "")),
    alerts: Number(match[2]!.replaceAll(",", "")),
    analytics: Number(match[3]!.replaceAll(",", ""))
  }))

/** The rows under the numbered query heading `n.` in the last answers block. */
const answerRows = (output: string, n: number) => {
  const block = output.slice(output.lastIndexOf("ClickHouse, over the materialized views, at"))
  const start = block.indexOf(`\n  ${n}. `)
  const end = block.indexOf(`\n  ${n + 1}. `, start)
  return block.slice(start, end === -1 ? block.indexOf("\n[", start) : end).split("\n").slice(3)
}

const summaryCount = (output: string, table: string) => {
  const summary = output.slice(output.indexOf("sentinel demo stopped after"))
  const match = new RegExp(`\\b${table} ([\\d,]+)`).exec(summary)
  return match === null ? undefined : Number(match[1]!.replaceAll(",", ""))
}

let deployment: Deployment | undefined
let demo: Demo | undefined

afterEach(async () => {
  if (demo !== undefined && demo.child.exitCode === null && demo.child.signalCode === null) {
    demo.child.kill("SIGKILL")
    await demo.exited
  }
  demo = undefined
  await deployment?.drop()
  deployment = undefined
})

describe("sentinel demo", () => {
  it("--help describes its options", async () => {
    const help = await sentinel({}, "demo", "--help")
    expect(help).toContain("usage: sentinel demo [--rate R] [--duration S] [--alert-share F]")
    for (const option of ["--rate R", "--duration S", "--alert-share F", "Ctrl-C"]) expect(help).toContain(option)
  })

  it(
    "runs the daemon and a producer, shows live progress, and on SIGINT stops cleanly and says what was persisted",
    async () => {
      const jaeger = stackEnv().JAEGER_QUERY_URL!
      deployment = await freshDeployment({ JAEGER_QUERY_URL: jaeger })
      const stackBefore = stackProcesses()
      demo = startDemo(deployment.env, "--rate", "1000")
      const running = demo
      onTestFailed(() => {
        console.log(`demo output:\n${running.stdout()}\n--- stderr ---\n${running.stderr().slice(-20_000)}`)
      })

      // Its children, sampled while it runs: none may outlive it.
      const spawned = new Map<number, string>()
      const sampling = (async () => {
        while (running.child.exitCode === null && running.child.signalCode === null) {
          for (const [pid, args] of await descendants(running.child.pid!)) spawned.set(pid, args)
          await sleep(1000)
        }
      })()

      const metricsUrl = await waitFor("the where-to-look block", async () => {
        expect(running.child.exitCode, running.stdout() + running.stderr()).toBeNull()
        return /metrics +(http:\/\/127\.0\.0\.1:\d+\/metrics)/.exec(running.stdout())?.[1]
      }, 180_000)
      const runningSince = Date.now()
      await waitFor("three progress lines and answers to the view queries", async () => {
        const output = running.stdout()
        return progressLines(output).length >= 3 && output.includes("ClickHouse, over the materialized views, at") &&
            Date.now() - runningSince >= 25_000
          ? true
          : undefined
      }, 180_000)
      // The HTTP endpoint runs in the demo, as it does in `sentinel run`.
      expect(await (await fetch(metricsUrl, { signal: AbortSignal.timeout(10_000) })).text()).toMatch(
        /^sentinel_records_consumed_total\{.*\} [1-9]/m
      )
      running.child.kill("SIGINT")
      const exit = await Promise.race([
        running.exited,
        sleep(180_000).then(() => {
          throw new Error(`the demo did not stop within 3 minutes of SIGINT:\n${running.stdout()}\n${running.stderr()}`)
        })
      ])
      await sampling
      const stdout = running.stdout()
      const context = `${stdout}\n--- stderr ---\n${running.stderr()}`
      expect(exit, context).toEqual({ code: 0, signal: null })

      // The shared stack was running: the demo started nothing and stopped nothing.
      expect(stdout).toMatch(/^local stack: .*started nothing$/m)
      expect(stdout).not.toMatch(/local stack: stopping/)
      expect(stackProcesses()).toEqual(stackBefore)
      for (const [pid, args] of spawned) expect(commandLine(pid), `${pid} ${args} is still running`).not.toBe(args)

      // Live progress, durable counts growing.
      const lines = progressLines(stdout)
      expect(lines.length, context).toBeGreaterThanOrEqual(3)
      for (let i = 1; i < lines.length; i++) {
        expect(lines[i]!.alerts).toBeGreaterThanOrEqual(lines[i - 1]!.alerts)
        expect(lines[i]!.analytics).toBeGreaterThanOrEqual(lines[i - 1]!.analytics)
      }
      expect(lines.at(-1)!.alerts).toBeGreaterThan(lines[0]!.alerts)
      expect(lines.at(-1)!.analytics).toBeGreaterThan(lines[0]!.analytics)

      // Where to look: Jaeger, /metrics and the three queries over the materialized views, with answers.
      expect(stdout).toContain(`Jaeger UI ${jaeger}/search?service=sentinel`)
      for (const view of ["fraud_rate_hourly", "model_accuracy_hourly", "user_activity_daily"]) {
        expect(stdout).toMatch(new RegExp(`^ {7}SELECT .* FROM ${view} AS `, "m"))
      }
      expect(answerRows(stdout, 1).join("\n"), context).toMatch(/^ +\d{4}-\d\d-\d\d \d\d:00:00 +[1-9]\d* /m)
      expect(answerRows(stdout, 2).join("\n"), context).toMatch(/^ +fraud_model_v2\.\d\.\d +[1-9]\d* /m)
      expect(answerRows(stdout, 3).join("\n"), context).toMatch(/^ +U\d{5} +[1-9]\d* /m)
      // The daemon's logs stayed at warning level, on standard error.
      expect(running.stderr()).not.toContain("\"level\":\"INFO\"")

      // The summary, and the stores agree with it.
      expect(stdout).toMatch(/^sentinel demo stopped after \d+:\d\d \(Ctrl-C\)$/m)
      expect(stdout, context).toMatch(/^ {2}accounted for: every produced record — committed by both paths/m)
      expect(stdout).not.toContain("✗")
      const postgres = Object.fromEntries(
        await Promise.all(
          postgresTables.map(async (table) =>
            [
              table,
              Number(
                (await pgQuery<{ n: string }>(deployment!.databaseUrl, `SELECT count(*) AS n FROM ${table}`))[0]?.n
              )
            ] as const
          )
        )
      )
      const clickhouse = await clickhouseCounts(deployment, clickhouseTables)
      for (const table of postgresTables) {
        expect(postgres[table], table).toBeGreaterThan(0)
        expect(summaryCount(stdout, table), table).toBe(postgres[table])
      }
      for (const table of clickhouseTables) {
        expect(clickhouse[table], table).toBeGreaterThan(0)
        expect(summaryCount(stdout, table), table).toBe(clickhouse[table])
      }
      expect(clickhouse.alerts).toBe(postgres.fraud_alerts)
    },
    420_000
  )
})
