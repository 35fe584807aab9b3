/**
 * Brings the local stack up once per test run (`scripts/stack.ts up`, in a child process so this
 * process never opens chDB) and, at the end, stops only what this run started: a developer's
 * running stack is reused and left as it was. Addresses already in the environment
 * (KAFKA_BROKERS, DATABASE_URL, CLICKHOUSE_URL, OTEL_EXPORTER_OTLP_ENDPOINT) are used as given.
 */
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import type { TestProject } from "vitest/node"

const root = path.resolve(import.meta.dirname, "..", "..")
const stack = (...args: Array<string>) =>
  execFileSync(process.execPath, ["--import", "tsx", path.join(root, "scripts", "stack.ts"), ...args], {
    cwd: root,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
    timeout: 25 * 60_000
  })

declare module "vitest" {
  export interface ProvidedContext {
    stackEnv: Record<string, string>
    /** This run's chDB folders live under it; runs at the same time each have their own. */
    clickhouseRoot: string
  }
}

const running = (): Set<string> =>
  new Set(
    (JSON.parse(stack("status", "--json")) as Array<{ service: string; running: boolean; pid?: number }>)
      .filter((s) => s.pid !== undefined)
      .map((s) => s.service)
  )

export default function setup(project: TestProject) {
  const before = running()
  const env = Object.fromEntries(
    stack("up")
      .split("\n")
      .filter((line) => line.includes("="))
      .map((line) => [line.slice(0, line.indexOf("=")), line.slice(line.indexOf("=") + 1)])
  )
  project.provide("stackEnv", env)
  const clickhouseRoot = path.join(root, ".sentinel", "data", "test-clickhouse", `run-${process.pid}-${Date.now()}`)
  project.provide("clickhouseRoot", clickhouseRoot)
  const startedHere = [...running()].filter((service) => !before.has(service))
  return () => {
    // This run's chDB folders are useless once it is over.
    fs.rmSync(clickhouseRoot, { recursive: true, force: true })
    if (startedHere.length > 0) stack("down", ...startedHere)
  }
}
