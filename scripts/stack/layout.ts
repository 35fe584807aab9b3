/**
 * Where the local stack keeps its caches, data, logs, pid files and env file.
 * Everything lives under `.sentinel/` (git-ignored) so `rm -rf .sentinel` is a full reset.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

export const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..")
export const home = path.resolve(process.env.SENTINEL_HOME ?? path.join(projectRoot, ".sentinel"))

export const dirs = {
  cache: path.join(home, "cache"),
  data: path.join(home, "data"),
  logs: path.join(home, "logs"),
  run: path.join(home, "run")
} as const

export const envFile = path.join(home, "stack.env")

export const ensureDir = (dir: string): string => {
  fs.mkdirSync(dir, { recursive: true })
  return dir
}
