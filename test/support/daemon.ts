/**
 * Sentinel as a user runs it: the `sentinel` command in a child process, configured only through
 * its environment, on topics, a consumer group, a database and a chDB folder of the test's own.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process"
import * as path from "node:path"
import { promisify } from "node:util"
import pg from "pg"
import type { PlanTally } from "../../src/produce/DetectorOutput.ts"
import * as ConsumerLag from "../../src/source/ConsumerLag.ts"
import { freshClickHousePath, freshDatabase, kafkaFor, projectRoot, stackEnv, uniqueName } from "./services.ts"

const bin = path.join(projectRoot, "bin", "sentinel.js")

export interface Deployment {
  readonly env: Record<string, string>
  readonly topics: ReadonlyArray<string>
  readonly groupId: string
  readonly databaseUrl: string
  readonly clickhousePath: string
  readonly drop: () => Promise<void>
}

export const freshDeployment = async (overrides: Record<string, string> = {}): Promise<Deployment> => {
  const stack = stackEnv()
  const database = await freshDatabase()
  const clickhousePath = freshClickHousePath()
  const prefix = uniqueName("s")
  const groupId = `${prefix}-group`
  const topicEnv = {
    SENTINEL_TOPIC_DETECTIONS: `${prefix}-fraud-detection-results`,
    SENTINEL_TOPIC_METRICS: `${prefix}-performance-metrics`,
    SENTINEL_TOPIC_TRANSACTIONS: `${prefix}-transaction-records`,
    SENTINEL_TOPIC_AUDITS: `${prefix}-audit-events`
  }
  const env: Record<string, string> = {
    KAFKA_BROKERS: stack.KAFKA_BROKERS!,
    DATABASE_URL: database.url,
    CLICKHOUSE_PATH: clickhousePath,
    SENTINEL_GROUP_ID: groupId,
    SENTINEL_LOG_LEVEL: "info",
    // Daemons of tests running at once must not compete for the default port.
    SENTINEL_HTTP_PORT: "0",
    ...(stack.OTEL_EXPORTER_OTLP_ENDPOINT === undefined
      ? {}
      : { OTEL_EXPORTER_OTLP_ENDPOINT: stack.OTEL_EXPORTER_OTLP_ENDPOINT }),
    ...topicEnv,
    ...overrides
  }
  return {
    env,
    topics: Object.values(topicEnv),
    groupId,
    databaseUrl: database.url,
    clickhousePath,
    drop: database.drop
  }
}

const childEnv = (env: Record<string, string>) => {
  // The parent's stack variables must not leak in: the deployment's own settings are the whole truth.
  const inherited = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !/^(KAFKA_|DATABASE_URL|CLICKHOUSE_|SENTINEL_|OTEL_)/.test(name))
  )
  return { ...inherited, ...env }
}

/** Runs a sentinel command to completion; returns stdout. */
export const sentinel = async (env: Record<string, string>, ...args: Array<string>): Promise<string> => {
  const { stdout } = await promisify(execFile)(process.execPath, [bin, ...args], {
    env: childEnv(env),
    cwd: projectRoot,
    maxBuffer: 64 * 1024 * 1024
  })
  return stdout
}

export interface Outcome {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

/** Runs a sentinel command to completion, whatever its exit code. */
export const sentinelExit = async (env: Record<string, string>, ...args: Array<string>): Promise<Outcome> => {
  try {
    return { code: 0, stdout: await sentinel(env, ...args), stderr: "" }
  } catch (error) {
    const failed = error as { code?: unknown; stdout?: string; stderr?: string }
    if (typeof failed.code !== "number") throw error
    return { code: failed.code, stdout: failed.stdout ?? "", stderr: failed.stderr ?? "" }
  }
}

export const produce = async (env: Record<string, string>, ...args: Array<string>): Promise<PlanTally> =>
  JSON.parse(await sentinel(env, "produce", ...args)) as PlanTally

export interface Daemon {
  readonly child: ChildProcess
  readonly output: () => string
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
}

export const startDaemon = (env: Record<string, string>): Daemon => {
  const child = spawn(process.execPath, [bin, "run"], {
    env: childEnv(env),
    cwd: projectRoot,
    stdio: ["ignore", "pipe", "pipe"]
  })
  let output = ""
  child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()))
  child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()))
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal }))
  )
  return { child, output: () => output, exited }
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

export const waitFor = async <A>(
  what: string,
  probe: () => Promise<A | undefined>,
  timeoutMs = 120_000
): Promise<A> => {
  const deadline = Date.now() + timeoutMs
  let lastError: unknown
  while (Date.now() < deadline) {
    try {
      const value = await probe()
      if (value !== undefined) return value
    } catch (error) {
      // A probe may meet the fault under test (a broker's group coordinator still loading after a
      // restart, say): that is "not yet", not a verdict.
      lastError = error
    }
    await sleep(500)
  }
  throw new Error(
    `timed out waiting for ${what}${lastError === undefined ? "" : ` (last probe failed: ${String(lastError)})`}`
  )
}

/**
 * Records not yet committed by the daemon's consumer groups (the alert path's and the analytics
 * path's), against the end of every partition of the deployment's topics.
 */
export const consumerLag = (deployment: Deployment): Promise<number> =>
  groupLag(deployment, deployment.groupId, `${deployment.groupId}-analytics`)

/** Records of the deployment's topics that `groups` have not committed, in all. */
const groupLag = async (deployment: Deployment, ...groups: ReadonlyArray<string>): Promise<number> => {
  const admin = kafkaFor(uniqueName("lag"), deployment.env.KAFKA_BROKERS).admin()
  await admin.connect()
  try {
    const lags = await ConsumerLag.consumerLag(admin, deployment.topics, groups)
    return lags.reduce((sum, lag) => sum + lag.behind, 0)
  } finally {
    await admin.disconnect()
  }
}

export const pgQuery = async <Row extends Record<string, unknown>>(
  url: string,
  sql: string,
  params: Array<unknown> = []
) => {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    return (await client.query<Row>(sql, params)).rows
  } finally {
    await client.end()
  }
}

/** True once every produced record is committed and every alert is relayed. */
export const drained = async (deployment: Deployment, alerts: number): Promise<true | undefined> => {
  if ((await consumerLag(deployment)) > 0) return undefined
  const [row] = await pgQuery<{ published: string }>(
    deployment.databaseUrl,
    "SELECT count(*) FILTER (WHERE published_at IS NOT NULL) AS published FROM outbox"
  )
  return Number(row?.published) === alerts ? true : undefined
}

/**
 * Stops the daemon as an orchestrator would and returns its exit status. A SIGTERM waits until the
 * daemon says it runs (or has exited): while `sentinel run` still loads, its handler is not installed
 * yet and Node's default action kills it, while a test stopping it means to see a clean stop. A daemon
 * can come up with nothing left to do when an earlier one finished it all.
 */
export const stopDaemon = async (daemon: Daemon, signal: NodeJS.Signals = "SIGTERM") => {
  if (signal === "SIGTERM") {
    await Promise.race([
      daemon.exited,
      waitFor("the daemon running", async () => (daemon.output().includes("sentinel running") ? true : undefined))
    ])
  }
  daemon.child.kill(signal)
  return daemon.exited
}

export type { PlanTally }

/** Row counts in a deployment's chDB folder, read by a child process once the daemon has exited. */
export const clickhouseCounts = async (deployment: Deployment, tables: ReadonlyArray<string>) => {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    [
      "--import",
      "tsx",
      path.join(projectRoot, "test", "support", "clickhouseCounts.ts"),
      deployment.clickhousePath,
      ...tables
    ],
    { cwd: projectRoot }
  )
  return JSON.parse(stdout) as Record<string, number>
}

/** Alerts stored so far: how the fault tests see the alert path move. */
export const alertCount = async (deployment: Deployment): Promise<number> =>
  Number((await pgQuery<{ n: string }>(deployment.databaseUrl, "SELECT count(*) AS n FROM fraud_alerts"))[0]?.n)

/**
 * Waits until the alert path moves again after a fault: it stores a new alert, or it has nothing
 * left to do (its group has committed every record: the fault came after it had caught up).
 */
export const alertsFlowAgain = async (deployment: Deployment, what: string, timeoutMs = 60_000): Promise<void> => {
  const before = await alertCount(deployment)
  await waitFor(
    what,
    async () =>
      (await alertCount(deployment)) > before || (await groupLag(deployment, deployment.groupId)) === 0
        ? true
        : undefined,
    timeoutMs
  )
}
