/**
 * The benchmark's resources on the local stack: the stack itself (brought up when it is not running,
 * and only what this run started is stopped again, as the tests' global setup does), and per
 * measurement fresh topics, consumer groups, a PostgreSQL database and a chDB folder, each removed
 * again through the cleanup.
 */
import { ConfigProvider, Effect } from "effect"
import { randomBytes } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import pg from "pg"
import { describeConfigError, load, type SentinelSettings, type Topics } from "../../src/config/Config.ts"
import { kafkaClient } from "../../src/source/KafkaSource.ts"
import { stackCommand, stackUp } from "../stack/child.ts"
import { dirs } from "../stack/layout.ts"
import type { Cleanup } from "./cleanup.ts"

const log = (line: string) => process.stderr.write(`[bench] ${line}\n`)

export const uniqueName = (prefix: string): string =>
  `${prefix}_${Date.now().toString(36)}_${randomBytes(3).toString("hex")}`

/**
 * `stack up` in a child process (this process never opens chDB), returning the stack's addresses;
 * the services it had to start are stopped by the cleanup.
 */
export const bringStackUp = (cleanup: Cleanup): Record<string, string> => {
  const { env, started: startedHere } = stackUp()
  if (startedHere.length > 0) {
    log(`started ${startedHere.join(", ")} for this run`)
    cleanup.add(`stop ${startedHere.join(", ")}`, () => stackCommand("down", ...startedHere))
  }
  if (env.KAFKA_BROKERS === undefined || env.DATABASE_URL === undefined) {
    throw new Error("`stack up` did not report KAFKA_BROKERS and DATABASE_URL")
  }
  return env
}

// Settings that place a deployment are the benchmark's to choose; every other SENTINEL_* variable
// (batching, pool sizes, outbox…) is passed on, so tuning can be measured: SENTINEL_BATCH_MAX_RECORDS=5000 npm run bench.
const placement =
  /^SENTINEL_(TOPIC_(DETECTIONS|METRICS|TRANSACTIONS|AUDITS)$|GROUP_ID$|ANALYTICS_GROUP_ID$|HTTP_|CLICKHOUSE_FAULTS$|HOME$|LOG_LEVEL$|KAFKA_|POSTGRES_PORT$|JAEGER_)/

/** The SENTINEL_* tuning variables of this process's environment. */
export const tuningEnv = (): Record<string, string> =>
  Object.fromEntries(
    Object.entries(process.env).filter(
      (entry): entry is [string, string] =>
        entry[0].startsWith("SENTINEL_") && !placement.test(entry[0]) && entry[1] !== undefined
    )
  )

/** The daemon's typed settings for an environment, exactly as `sentinel` would read them. */
export const settingsFor = (env: Record<string, string>): Promise<SentinelSettings> =>
  Effect.runPromise(
    load.pipe(
      Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)))),
      Effect.mapError((error) => new Error(`invalid configuration:\n${describeConfigError(error)}`))
    )
  )

export const topicsNamed = (prefix: string): Topics => ({
  detections: `${prefix}-fraud-detection-results`,
  metrics: `${prefix}-performance-metrics`,
  transactions: `${prefix}-transaction-records`,
  audits: `${prefix}-audit-events`
})

export const topicEnv = (topics: Topics): Record<string, string> => ({
  SENTINEL_TOPIC_DETECTIONS: topics.detections,
  SENTINEL_TOPIC_METRICS: topics.metrics,
  SENTINEL_TOPIC_TRANSACTIONS: topics.transactions,
  SENTINEL_TOPIC_AUDITS: topics.audits
})

/** Deletes a measurement's topics and consumer groups, through the cleanup. */
export const removeKafkaResourcesLater = (
  cleanup: Cleanup,
  brokers: string,
  { groups = [], topics }: { readonly topics?: Topics; readonly groups?: ReadonlyArray<string> }
): () => Promise<void> =>
  cleanup.add("delete the benchmark's topics and consumer groups", async () => {
    const admin = kafkaClient({ brokers: brokers.split(","), clientId: "sentinel-bench" }).admin()
    await admin.connect()
    try {
      const existing = new Set(await admin.listTopics())
      const topicNames = Object.values(topics ?? {}).filter((topic) => existing.has(topic))
      if (topicNames.length > 0) await admin.deleteTopics({ topics: topicNames })
      const known = new Set((await admin.listGroups()).groups.map((group) => group.groupId))
      const groupIds = groups.filter((group) => known.has(group))
      if (groupIds.length > 0) await admin.deleteGroups(groupIds)
    } finally {
      await admin.disconnect()
    }
  })

/** A new, empty database on the stack's server, dropped through the cleanup (or by the returned function). */
export const freshDatabase = async (
  cleanup: Cleanup,
  adminUrl: string
): Promise<{ readonly url: string; readonly drop: () => Promise<void> }> => {
  const name = uniqueName("bench")
  const admin = new pg.Client({ connectionString: adminUrl })
  await admin.connect()
  try {
    // Identifiers cannot be bound as parameters; the name is generated here, never taken from input.
    await admin.query(`CREATE DATABASE ${name}`)
  } finally {
    await admin.end()
  }
  const drop = cleanup.add(`drop database ${name}`, async () => {
    const client = new pg.Client({ connectionString: adminUrl })
    await client.connect()
    try {
      await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
    } finally {
      await client.end()
    }
  })
  const url = new URL(adminUrl)
  url.pathname = `/${name}`
  return { url: url.toString(), drop }
}

/**
 * A chDB folder of its own, removed by the cleanup when the whole run ends. Not sooner: removing the
 * thousands of files of a folder makes creating files slower for minutes after on a journal-less ext4
 * such as this machine's (the kernel passes over recently deleted inodes), and chDB creates a dozen
 * files per part, so the next measurement would pay for the previous one's removal.
 */
export const freshClickHouseFolder = (cleanup: Cleanup): string => {
  const folder = path.join(dirs.data, "bench-clickhouse", uniqueName("ch"))
  fs.mkdirSync(folder, { recursive: true })
  cleanup.add(`remove ${folder}`, () => fs.rmSync(folder, { recursive: true, force: true }))
  return folder
}

/** A child's environment: the parent's, without any service or Sentinel setting, plus `env`. */
export const childEnv = (env: Record<string, string>): NodeJS.ProcessEnv => ({
  ...Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !/^(KAFKA_|DATABASE_URL|CLICKHOUSE_|SENTINEL_|OTEL_)/.test(name))
  ),
  ...env
})
