/**
 * Runs ClickHouse statements against a chDB folder and prints each one's rows as a JSON array (one
 * line in all). Run as a child process, while the daemon is stopped: a chDB folder belongs to one
 * process at a time.
 * usage: tsx test/cli/chdb.ts <chdb-path> '<JSON array of { query, params?, rows? }>'
 * `rows: true` reads a SELECT's rows; otherwise the statement is run as a command.
 */
import { makeClient } from "../../src/sinks/clickhouse/ClickHouse.ts"

export interface Statement {
  readonly query: string
  readonly params?: Record<string, unknown>
  readonly rows?: boolean
}

const [folder, statements] = process.argv.slice(2)
const client = makeClient({ _tag: "Embedded", path: folder! })
const results: Array<ReadonlyArray<unknown>> = []
for (const statement of JSON.parse(statements!) as ReadonlyArray<Statement>) {
  if (statement.rows === true) {
    const result = await client.query({
      query: statement.query,
      query_params: statement.params ?? {},
      format: "JSONEachRow"
    })
    results.push(await result.json())
  } else {
    await client.command({ query: statement.query, query_params: statement.params ?? {} })
    results.push([])
  }
}
await client.close()
process.stdout.write(`${JSON.stringify(results)}\n`)
