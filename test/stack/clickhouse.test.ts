import { describe, expect, it } from "vitest"
import { makeClient } from "../../src/sinks/clickhouse/ClickHouse.ts"
import { freshClickHousePath } from "../support/services.ts"

describe("ClickHouse (chDB) through @clickhouse/client", () => {
  it("inserts and selects, and drops a retried insert carrying the same deduplication token", async () => {
    const client = makeClient({ _tag: "Embedded", path: freshClickHousePath() })
    try {
      await client.command({
        query: `CREATE TABLE smoke (id UInt32, note String) ENGINE = MergeTree ORDER BY id
                SETTINGS non_replicated_deduplication_window = 1000`
      })
      const rows = [
        { id: 1, note: "a" },
        { id: 2, note: "b" }
      ]
      const insert = () =>
        client.insert({
          table: "smoke",
          values: rows,
          format: "JSONEachRow",
          clickhouse_settings: { insert_deduplication_token: "smoke-batch-1" }
        })
      await insert()
      await insert() // the retry: same rows, same token
      // Every insert names its own token: through chdb/connection a setting sticks to the session.
      await client.insert({
        table: "smoke",
        values: [{ id: 3, note: "c" }],
        format: "JSONEachRow",
        clickhouse_settings: { insert_deduplication_token: "smoke-batch-2" }
      })

      const result = await client.query({ query: "SELECT id, note FROM smoke ORDER BY id", format: "JSONEachRow" })
      expect(await result.json()).toEqual([...rows, { id: 3, note: "c" }])
      const count = await client.query({
        query: "SELECT count() AS n FROM smoke WHERE id <= {max:UInt32}",
        format: "JSONEachRow",
        query_params: { max: 2 }
      })
      expect(await count.json()).toEqual([{ n: 2 }])
    } finally {
      await client.close()
    }
  })
})
