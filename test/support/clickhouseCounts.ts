/**
 * Prints row counts of Sentinel's ClickHouse tables as JSON. Run as a child process: a chDB folder
 * belongs to one process at a time, and a test process may need to look at several.
 * usage: tsx test/support/clickhouseCounts.ts <chdb-path> [table…]
 */
import { makeClient } from "../../src/sinks/clickhouse/ClickHouse.ts"

const [folder, ...tables] = process.argv.slice(2)
const client = makeClient({ _tag: "Embedded", path: folder! })
const counts: Record<string, number> = {}
for (const table of tables) {
  // Table names come from the test's own list; `count()` without FINAL is the exactly-once check.
  const result = await client.query({ query: `SELECT count() AS n FROM ${table}`, format: "JSONEachRow" })
  const [row] = await result.json<{ n: string | number }>()
  counts[table] = Number(row?.n)
}
await client.close()
process.stdout.write(`${JSON.stringify(counts)}\n`)
