/**
 * Sentinel as an operator runs it (`bin/sentinel.js` in a child process, configured by its
 * environment), and what the benchmark reads of the running process from /proc: resident memory
 * (VmRSS) and CPU time (utime + stime), sampled every 250 ms.
 */
import { type ChildProcess, execFile, execFileSync, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { promisify } from "node:util"
import { projectRoot } from "../stack/layout.ts"
import type { Cleanup } from "./cleanup.ts"
import { childEnv } from "./deployment.ts"

const bin = path.join(projectRoot, "bin", "sentinel.js")

/** Runs a `sentinel` command to completion (`migrate`, say); fails with its output when it fails. */
export const sentinelCommand = async (env: Record<string, string>, ...args: Array<string>): Promise<string> => {
  try {
    const { stdout } = await promisify(execFile)(process.execPath, [bin, ...args], {
      env: childEnv(env),
      cwd: projectRoot,
      maxBuffer: 16 * 1024 * 1024
    })
    return stdout
  } catch (error) {
    const failed = error as { stderr?: string; message: string }
    throw new Error(`sentinel ${args.join(" ")} failed: ${failed.stderr?.trim() || failed.message}`)
  }
}

export interface Exit {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
}

export interface Daemon {
  readonly pid: number
  readonly hasExited: () => boolean
  /** SIGTERM, and SIGKILL if it has not exited after `graceMs`. */
  readonly stop: () => Promise<Exit>
  /** The end of its output (JSON log lines), for error messages; the whole of it is in `logFile`. */
  readonly outputTail: () => string
  readonly logFile: string
}

/**
 * Starts `sentinel run`; its output goes to `logFile`; the cleanup stops it if nothing else does.
 * With `cpuProfileDir`, V8 writes the daemon's CPU profiles there when it exits, one per thread (the
 * largest is the main thread's; open it in Chrome's DevTools or speedscope).
 */
export const startDaemon = (
  cleanup: Cleanup,
  env: Record<string, string>,
  logFile: string,
  graceMs: number,
  cpuProfileDir?: string
): Daemon => {
  fs.mkdirSync(path.dirname(logFile), { recursive: true })
  const log = fs.createWriteStream(logFile)
  const profiling = cpuProfileDir === undefined ? [] : ["--cpu-prof", `--cpu-prof-dir=${cpuProfileDir}`]
  const child: ChildProcess = spawn(process.execPath, [...profiling, bin, "run"], {
    env: childEnv(env),
    cwd: projectRoot,
    stdio: ["ignore", "pipe", "pipe"]
  })
  if (child.pid === undefined) throw new Error("could not start sentinel run")
  let tail = ""
  const keep = (chunk: Buffer) => {
    log.write(chunk)
    tail = (tail + chunk.toString()).slice(-4000)
  }
  child.stdout!.on("data", keep)
  child.stderr!.on("data", keep)
  let done = false
  const exited = new Promise<Exit>((resolve) =>
    child.once("close", (code, signal) => {
      done = true
      log.end()
      resolve({ code, signal })
    })
  )
  const terminate = async (): Promise<Exit> => {
    if (!done) child.kill("SIGTERM")
    let timer: NodeJS.Timeout | undefined
    const killed = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        if (!done) child.kill("SIGKILL")
        resolve()
      }, graceMs)
    })
    await Promise.race([exited, killed])
    clearTimeout(timer)
    return exited
  }
  const stop = cleanup.add(`stop sentinel run (pid ${child.pid})`, terminate)
  return {
    pid: child.pid,
    hasExited: () => done,
    stop: async () => {
      await stop()
      return exited
    },
    outputTail: () => tail,
    logFile
  }
}

const clockTicks = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100
  } catch {
    return 100
  }
})()

export interface ProcessSample {
  /** performance.now() when read. */
  readonly at: number
  readonly rssMb: number
  /** User and system CPU time so far. */
  readonly cpuSeconds: number
}

/** Reads /proc/<pid>: undefined once the process is gone. */
export const readProcess = (pid: number): ProcessSample | undefined => {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, "utf8")
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8")
    const rssKb = Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1] ?? NaN)
    // Fields after the command name (which may hold spaces), from field 3 on: utime is 14, stime 15.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    const ticks = Number(fields[14 - 3]) + Number(fields[15 - 3])
    return { at: performance.now(), rssMb: rssKb / 1024, cpuSeconds: ticks / clockTicks }
  } catch {
    return undefined
  }
}

const median = (values: ReadonlyArray<number>): number => {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

/** Samples a process every 250 ms until stopped. */
export class ProcessSampler {
  readonly samples: Array<ProcessSample> = []
  private readonly timer: NodeJS.Timeout

  constructor(readonly pid: number) {
    this.sample()
    this.timer = setInterval(() => this.sample(), 250)
  }

  sample(): void {
    const sample = readProcess(this.pid)
    if (sample !== undefined) this.samples.push(sample)
  }

  stop(): void {
    clearInterval(this.timer)
  }

  private between(from: number, to: number): ReadonlyArray<ProcessSample> {
    return this.samples.filter((sample) => sample.at >= from && sample.at <= to)
  }

  peakRssMb(from = -Infinity, to = Infinity): number {
    return Math.max(...this.between(from, to).map((sample) => sample.rssMb))
  }

  medianRssMb(from: number, to: number): number {
    return median(this.between(from, to).map((sample) => sample.rssMb))
  }

  /** CPU time over wall time between the first and last sample in [from, to]; 100 = one core busy. */
  cpuPercent(from: number, to: number): number {
    const window = this.between(from, to)
    const first = window[0]
    const last = window[window.length - 1]
    if (first === undefined || last === undefined || last.at === first.at) return NaN
    return (100 * (last.cpuSeconds - first.cpuSeconds)) / ((last.at - first.at) / 1000)
  }
}
