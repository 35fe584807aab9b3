/**
 * Prints the rows of one query against a chDB folder as a JSON array. Run as a child process: a
 * chDB folder belongs to one process at a time, and a test process may need to look at several.
 * usage: tsx test/support/clickhouseQuery.ts <chdb-path> <query>
 */
import { makeClient } from "../../src/sinks/clickhouse/ClickHouse.ts"

const [folder, query] = process.argv.slice(2)
const client = makeClient({ _tag: "Embedded", path: folder! })
const result = await client.query({ query: query!, format: "JSONEachRow" })
const rows = await result.json()
await client.close()
process.stdout.write(`${JSON.stringify(rows)}\n`)
