import { parseError } from "@clickhouse/client"
import { describe, expect, it } from "@effect/vitest"
import { classify, writeError } from "../../../src/sinks/clickhouse/ClickHouseError.ts"

const serverError = (code: number, type: string) => parseError(`Code: ${code}. DB::Exception: failed. (${type})`)
const socketError = (code: string, message: string) => Object.assign(new Error(message), { code })

describe("classify", () => {
  it("treats the network, timeouts and an overloaded server as transient", () => {
    for (
      const cause of [
        socketError("ECONNREFUSED", "connect ECONNREFUSED 127.0.0.1:8123"),
        socketError("ECONNRESET", "socket hang up"),
        socketError("ETIMEDOUT", "connect ETIMEDOUT"),
        new Error("Timeout error."),
        serverError(252, "TOO_MANY_PARTS"),
        serverError(159, "TIMEOUT_EXCEEDED"),
        serverError(241, "MEMORY_LIMIT_EXCEEDED"),
        serverError(60, "UNKNOWN_TABLE"), // a deploy that has not migrated yet: not the records' fault
        "something odd"
      ]
    ) {
      expect(classify(cause), String(cause)).toBe("transient")
    }
  })

  it("treats data ClickHouse cannot read, and broken statements, as permanent", () => {
    for (
      const [code, type] of [
        [6, "CANNOT_PARSE_TEXT"],
        [27, "CANNOT_PARSE_INPUT_ASSERTION_FAILED"],
        [41, "CANNOT_PARSE_DATETIME"],
        [53, "TYPE_MISMATCH"],
        [62, "SYNTAX_ERROR"],
        [72, "CANNOT_PARSE_NUMBER"]
      ] as const
    ) {
      expect(classify(serverError(code, type)), type).toBe("permanent")
    }
  })

  it("keeps the table, the code and the cause in the error", () => {
    const cause = serverError(252, "TOO_MANY_PARTS")
    expect(writeError("detection_results", cause)).toMatchObject({
      _tag: "ClickHouseWriteError",
      table: "detection_results",
      classification: "transient",
      code: "252",
      message: expect.stringContaining("failed."),
      cause
    })
  })
})
