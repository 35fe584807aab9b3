import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { projectRoot, stackEnv } from "../support/services.ts"

const stack = (...args: Array<string>) =>
  execFileSync(process.execPath, ["--import", "tsx", path.join(projectRoot, "scripts", "stack.ts"), ...args], {
    cwd: projectRoot,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"]
  })

interface Row {
  readonly service: string
  readonly running: boolean
  readonly pid?: number
}

describe("npm run stack", () => {
  it("`up` on a running stack starts nothing new and reports the same addresses", () => {
    const before = JSON.parse(stack("status", "--json")) as Array<Row>
    const env = stack("up")
    const after = JSON.parse(stack("status", "--json")) as Array<Row>
    expect(after).toEqual(before)
    for (const [name, value] of Object.entries(stackEnv())) expect(env).toContain(`${name}=${value}`)
    expect(fs.readFileSync(path.join(projectRoot, ".sentinel", "stack.env"), "utf8")).toBe(env)
  })

  it("refuses an unknown service name for `down` without stopping anything", () => {
    expect(() => stack("down", "zookeeper")).toThrow(/unknown service/)
    const rows = JSON.parse(stack("status", "--json")) as Array<Row>
    expect(rows.filter((r) => r.pid !== undefined).length).toBeGreaterThan(0)
  })
})
