/**
 * A fault-injecting wrapper of the ClickHouse client, for outage drills: an embedded engine cannot
 * be unplugged, so the daemon is told to behave as if it were. Enabled only when
 * `SENTINEL_CLICKHOUSE_FAULTS` names a control file; its content sets the mode of every later call:
 * - empty, missing or `ok`: calls go through;
 * - `fail`: calls are refused at once, as by a server that is down (ECONNREFUSED);
 * - `hang`: calls wait, as on a stalled network, and go through once the mode changes back.
 */
import type { ClickHouseClient } from "@clickhouse/client"
import * as fs from "node:fs"

export type FaultMode = "ok" | "fail" | "hang"

const readMode = (controlFile: string): FaultMode => {
  let text = ""
  try {
    text = fs.readFileSync(controlFile, "utf8").trim()
  } catch {
    // No control file: no fault.
  }
  return text === "fail" || text === "hang" ? text : "ok"
}

const refused = () =>
  Object.assign(new Error("connect ECONNREFUSED (fault injected by SENTINEL_CLICKHOUSE_FAULTS)"), {
    code: "ECONNREFUSED"
  })

const gate = async (controlFile: string): Promise<void> => {
  for (;;) {
    const mode = readMode(controlFile)
    if (mode === "ok") return
    if (mode === "fail") throw refused()
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

const gated: ReadonlySet<PropertyKey> = new Set(["insert", "query", "command", "exec"])

export const withFaults = (client: ClickHouseClient, controlFile: string): ClickHouseClient =>
  new Proxy(client, {
    get(target, property, receiver) {
      const value: unknown = Reflect.get(target, property, receiver)
      if (typeof value !== "function") return value
      if (!gated.has(property)) return value.bind(target)
      return async (...args: Array<unknown>) => {
        await gate(controlFile)
        return value.apply(target, args)
      }
    }
  })
