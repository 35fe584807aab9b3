/**
 * Brings the local stack up once per test run (`scripts/stack.ts up`, in a child process so this
 * process never opens chDB) and, at the end, stops only what this run started: a developer's
 * running stack is reused and left as it was. Addresses already in the environment
 * (KAFKA_BROKERS, DATABASE_URL, CLICKHOUSE_URL, OTEL_EXPORTER_OTLP_ENDPOINT) are used as given.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import type { TestProject } from "vitest/node"
import { stackCommand, stackUp } from "../../scripts/stack/child.ts"

const root = path.resolve(import.meta.dirname, "..", "..")

declare module "vitest" {
  export interface ProvidedContext {
    stackEnv: Record<string, string>
    /** This run's chDB folders live under it; runs at the same time each have their own. */
    clickhouseRoot: string
  }
}

export default function setup(project: TestProject) {
  const { env, started: startedHere } = stackUp()
  project.provide("stackEnv", env)
  const clickhouseRoot = path.join(root, ".sentinel", "data", "test-clickhouse", `run-${process.pid}-${Date.now()}`)
  project.provide("clickhouseRoot", clickhouseRoot)
  return () => {
    // This run's chDB folders are useless once it is over.
    fs.rmSync(clickhouseRoot, { recursive: true, force: true })
    if (startedHere.length > 0) stackCommand("down", ...startedHere)
  }
}
