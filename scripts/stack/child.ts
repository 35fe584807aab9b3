/**
 * The local stack driven from another process (the test suite's global setup, the benchmark): each
 * command runs `scripts/stack.ts` in a child, so the caller never opens chDB itself, and `up` tells
 * which services it had to start — the ones the caller stops when it is done, and only those.
 */
import { execFileSync } from "node:child_process"
import * as path from "node:path"
import { projectRoot as root } from "./layout.ts"

export const stackCommand = (...args: Array<string>): string =>
  execFileSync(process.execPath, ["--import", "tsx", path.join(root, "scripts", "stack.ts"), ...args], {
    cwd: root,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
    timeout: 25 * 60_000
  })

/** Services whose recorded process runs: the ones a `stack down` would stop. */
const runningServices = (): Set<string> =>
  new Set(
    (JSON.parse(stackCommand("status", "--json")) as Array<{ service: string; pid?: number }>)
      .filter((service) => service.pid !== undefined)
      .map((service) => service.service)
  )

/** `stack up`: the stack's addresses, and the services this call started. */
export const stackUp = (): { readonly env: Record<string, string>; readonly started: ReadonlyArray<string> } => {
  const before = runningServices()
  const env = Object.fromEntries(
    stackCommand("up")
      .split("\n")
      .filter((line) => line.includes("="))
      .map((line) => [line.slice(0, line.indexOf("=")), line.slice(line.indexOf("=") + 1)])
  )
  return { env, started: [...runningServices()].filter((service) => !before.has(service)) }
}
