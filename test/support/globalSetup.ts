/**
 * Brings the local stack up once per test run (`scripts/stack.ts up`, in a child process so this
 * process never opens chDB) and down at the end, unless it was already running before the run:
 * a developer's stack is reused and left as it was. Addresses already in the environment
 * (KAFKA_BROKERS, DATABASE_URL, CLICKHOUSE_URL, OTEL_EXPORTER_OTLP_ENDPOINT) are used as given.
 */
import { execFileSync } from "node:child_process"
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
  }
}

export default function setup(project: TestProject) {
  const before = JSON.parse(stack("status", "--json")) as Array<{ service: string; running: boolean }>
  const wasRunning = before.filter((s) => s.service !== "clickhouse").every((s) => s.running)
  const env = Object.fromEntries(
    stack("up")
      .split("\n")
      .filter((line) => line.includes("="))
      .map((line) => [line.slice(0, line.indexOf("=")), line.slice(line.indexOf("=") + 1)])
  )
  project.provide("stackEnv", env)
  return () => {
    if (!wasRunning) stack("down")
  }
}
