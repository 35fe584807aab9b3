import * as fs from "node:fs"

/**
 * The daemon's resident memory must stay under this during a fault: its chDB engine (200–350 MB)
 * included, with both paths' queues full.
 */
export const rssBoundMb = 900

/** Resident memory of a process, in MB. */
export const rssOf = (pid: number): number => {
  const line = fs.readFileSync(`/proc/${pid}/status`, "utf8").split("\n").find((l) => l.startsWith("VmRSS:"))
  return Number(line?.replace(/\D+/g, "") ?? 0) / 1024
}
