/**
 * Per-test isolation on the shared stack: unique topics, a database of its own, a chDB folder of
 * its own. Test files run in parallel processes, so nothing here may be shared between them.
 */
import { Kafka, logLevel } from "kafkajs"
import { randomBytes } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import pg from "pg"
import { inject } from "vitest"

export const projectRoot = path.resolve(import.meta.dirname, "..", "..")

export const stackEnv = (): Record<string, string> => inject("stackEnv")

export const uniqueName = (prefix: string): string =>
  `${prefix}_${Date.now().toString(36)}_${randomBytes(4).toString("hex")}`

export const kafkaFor = (clientId = uniqueName("test"), brokers = stackEnv().KAFKA_BROKERS!) =>
  new Kafka({ clientId, brokers: brokers.split(","), logLevel: logLevel.NOTHING })

export const createTopics = async (topics: ReadonlyArray<string>, numPartitions = 6): Promise<void> => {
  const admin = kafkaFor().admin()
  await admin.connect()
  try {
    await admin.createTopics({ waitForLeaders: true, topics: topics.map((topic) => ({ topic, numPartitions })) })
  } finally {
    await admin.disconnect()
  }
}

const withDatabaseUrl = (url: string, database: string): string => {
  const parsed = new URL(url)
  parsed.pathname = `/${database}`
  return parsed.toString()
}

/** A new, empty PostgreSQL database on the stack's server; dropped by the returned cleanup. */
export const freshDatabase = async (): Promise<{ url: string; drop: () => Promise<void> }> => {
  const adminUrl = stackEnv().DATABASE_URL!
  const name = uniqueName("t")
  const admin = new pg.Client({ connectionString: adminUrl })
  await admin.connect()
  // Identifiers cannot be bound as parameters; the name is generated here, never from input.
  await admin.query(`CREATE DATABASE ${name}`)
  await admin.end()
  return {
    url: withDatabaseUrl(adminUrl, name),
    drop: async () => {
      const client = new pg.Client({ connectionString: adminUrl })
      await client.connect()
      await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
      await client.end()
    }
  }
}

/** A chDB data folder owned by this test process alone. */
export const freshClickHousePath = (): string => {
  const dir = path.join(inject("clickhouseRoot"), uniqueName(`p${process.pid}`))
  fs.mkdirSync(dir, { recursive: true })
  return dir
}
