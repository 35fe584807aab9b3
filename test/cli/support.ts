/** What the operator-command tests share: exit codes of the real CLI, and ClickHouse through a child process. */
import { execFile } from "node:child_process"
import * as path from "node:path"
import { promisify } from "node:util"
import { expect } from "vitest"
import { type Deployment, sentinelExit } from "../support/daemon.ts"
import { projectRoot } from "../support/services.ts"
import type { Statement } from "./chdb.ts"

/** Runs `statements` on the deployment's chDB folder (the daemon must be stopped); each one's rows. */
export const clickhouse = async (
  deployment: Deployment,
  statements: ReadonlyArray<Statement>
): Promise<Array<Array<Record<string, unknown>>>> => {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    [
      "--import",
      "tsx",
      path.join(projectRoot, "test", "cli", "chdb.ts"),
      deployment.clickhousePath,
      JSON.stringify(statements)
    ],
    { cwd: projectRoot, maxBuffer: 64 * 1024 * 1024 }
  )
  return JSON.parse(stdout) as Array<Array<Record<string, unknown>>>
}

/** Every `--help` prints the command's usage and exits 0; every bad command line exits 2 with its usage. */
export const expectUsage = async (
  env: Record<string, string>,
  command: string,
  helps: ReadonlyArray<ReadonlyArray<string>>,
  misuses: ReadonlyArray<ReadonlyArray<string>>
): Promise<void> => {
  for (const args of helps) {
    const outcome = await sentinelExit(env, command, ...args, "--help")
    expect(outcome.code, outcome.stderr).toBe(0)
    expect(outcome.stdout).toContain(`usage: sentinel ${command}`)
  }
  for (const args of misuses) {
    const outcome = await sentinelExit(env, command, ...args)
    expect({ args, code: outcome.code }, outcome.stderr).toEqual({ args, code: 2 })
    expect(outcome.stderr).toContain(`usage: sentinel ${command}`)
  }
}
