/**
 * Process bookkeeping for the local stack: detached children recorded by pid, so `down` stops
 * exactly what `up` started and nothing else.
 */
import { spawn, type SpawnOptions, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as path from "node:path"
import { dirs, ensureDir } from "./layout.ts"

export interface Started {
  readonly pid: number
  /** A fragment of the command line, checked before signalling so a reused pid is never killed. */
  readonly marker: string
}

const pidFile = (service: string) => path.join(dirs.run, `${service}.json`)

export const readStarted = (service: string): Started | undefined => {
  try {
    return JSON.parse(fs.readFileSync(pidFile(service), "utf8")) as Started
  } catch {
    return undefined
  }
}

export const recordStarted = (service: string, started: Started): void => {
  ensureDir(dirs.run)
  fs.writeFileSync(pidFile(service), JSON.stringify(started))
}

export const forgetStarted = (service: string): void => fs.rmSync(pidFile(service), { force: true })

const commandLine = (pid: number): string | undefined => {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ")
  } catch {
    return undefined
  }
}

/** True when the recorded process still runs and is still the one we started. */
export const isAlive = (started: Started | undefined): started is Started => {
  if (started === undefined) return false
  const cmd = commandLine(started.pid)
  return cmd !== undefined && cmd.includes(started.marker)
}

/** Starts a long-running child detached from this process, its output appended to a log file. */
export const spawnDetached = (
  command: string,
  args: ReadonlyArray<string>,
  logName: string,
  options: SpawnOptions = {}
): number => {
  ensureDir(dirs.logs)
  const log = fs.openSync(path.join(dirs.logs, `${logName}.log`), "a")
  const child = spawn(command, args, { ...options, detached: true, stdio: ["ignore", log, log] })
  child.unref()
  fs.closeSync(log)
  if (child.pid === undefined) throw new Error(`could not start ${command}`)
  return child.pid
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** Sends SIGTERM, waits up to `graceMs`, then SIGKILL. */
export const stopProcess = async (started: Started, graceMs = 20_000): Promise<void> => {
  if (!isAlive(started)) return
  process.kill(started.pid, "SIGTERM")
  const deadline = Date.now() + graceMs
  while (Date.now() < deadline) {
    if (!isAlive(started)) return
    await sleep(100)
  }
  if (isAlive(started)) process.kill(started.pid, "SIGKILL")
  while (isAlive(started)) await sleep(50)
}

/** Polls `probe` until it resolves true, or fails with the last error after `timeoutMs`. */
export const waitUntil = async (
  what: string,
  probe: () => Promise<boolean>,
  timeoutMs: number,
  onTick?: () => void
): Promise<void> => {
  const deadline = Date.now() + timeoutMs
  let last: unknown
  while (Date.now() < deadline) {
    onTick?.()
    try {
      if (await probe()) return
    } catch (error) {
      last = error
    }
    await sleep(250)
  }
  throw new Error(`${what} did not become healthy within ${timeoutMs / 1000}s${last ? `: ${String(last)}` : ""}`)
}

export const isPortFree = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const server = net.createServer()
    server.once("error", () => resolve(false))
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)))
  })

/** A port the OS reports free on loopback right now. */
export const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })

/** The previous port when it is still free (so addresses stay stable across restarts), else a new one. */
export const choosePort = async (configured: string | undefined, previous: number | undefined): Promise<number> => {
  if (configured !== undefined && configured !== "") {
    const port = Number(configured)
    if (!Number.isInteger(port) || port <= 0 || port > 65535) throw new Error(`invalid port: ${configured}`)
    return port
  }
  if (previous !== undefined && (await isPortFree(previous))) return previous
  return freePort()
}

/** Fails with one line naming what to install when a prerequisite command is missing. */
export const requireCommand = (command: string, install: string): void => {
  const found = spawnSync("sh", ["-c", `command -v ${command}`], { stdio: "ignore" }).status === 0
  if (!found) throw new PrerequisiteMissing(`${command} not found on PATH: install ${install}`)
}

export class PrerequisiteMissing extends Error {}

export const run = (command: string, args: ReadonlyArray<string>, options: SpawnOptions = {}): Promise<void> =>
  new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"], ...options })
    let output = ""
    child.stdout?.on("data", (chunk: Buffer) => (output += chunk.toString()))
    child.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString()))
    child.once("error", reject)
    child.once(
      "close",
      (code) =>
        code === 0
          ? resolve()
          : reject(new Error(`${command} ${args.join(" ")} exited ${code}:\n${output.slice(-4000)}`))
    )
  })
