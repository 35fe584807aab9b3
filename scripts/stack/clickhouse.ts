/**
 * ClickHouse for the local stack: nothing to start. Without `CLICKHOUSE_URL` it is the embedded
 * chDB engine, whose data folder belongs to whichever single process opens it (the daemon, a test).
 */
import * as path from "node:path"
import { type ClickHouseTarget, describeTarget, makeClient, targetFrom } from "../../src/sinks/clickhouse/ClickHouse.ts"
import { dirs, ensureDir } from "./layout.ts"

export const clickHouseTarget = (): ClickHouseTarget => targetFrom(process.env, path.join(dirs.data, "clickhouse"))

/**
 * A real query. An embedded folder that another process holds cannot be opened here; that is
 * reported as in use rather than as a failure.
 */
export const probeClickHouse = async (target: ClickHouseTarget): Promise<string> => {
  if (target._tag === "Embedded") ensureDir(target.path)
  const client = makeClient(target)
  try {
    const result = await client.query({ query: "SELECT version() AS version", format: "JSONEachRow" })
    const [row] = await result.json<{ version: string }>()
    return `${describeTarget(target)}, ClickHouse ${row?.version ?? "?"}`
  } catch (error) {
    if (target._tag === "Embedded" && /lock|already running|in use/i.test(String(error))) {
      return `${describeTarget(target)}, held by another process`
    }
    throw error
  } finally {
    await client.close()
  }
}
