import { describe, expect, it } from "vitest"
import { classifyPostgresError, isTlsRefusal } from "../../../src/sinks/postgres/PostgresError.ts"

describe("classifyPostgresError", () => {
  it.each([
    ["ECONNREFUSED", -111],
    ["ECONNRESET", -104],
    ["ETIMEDOUT", -110],
    ["EPIPE", -32]
  ])("calls the system error %s transient", (code, errno) => {
    expect(classifyPostgresError({ code, errno })).toBe("transient")
  })

  it("calls an error without a SQLSTATE (connection terminated, pool timeout) transient", () => {
    expect(classifyPostgresError({})).toBe("transient")
  })

  it.each(["57P01", "57P03", "53300", "08006", "08001", "40001", "40P01", "55P03", "57014"])(
    "calls SQLSTATE %s transient",
    (code) => expect(classifyPostgresError({ code })).toBe("transient")
  )

  it.each(["23505", "23514", "22003", "22P02", "42601", "42501", "28P01", "P0001"])(
    "calls SQLSTATE %s permanent",
    (code) => expect(classifyPostgresError({ code })).toBe("permanent")
  )
})

describe("isTlsRefusal", () => {
  it.each(["SELF_SIGNED_CERT_IN_CHAIN", "UNABLE_TO_VERIFY_LEAF_SIGNATURE", "ERR_TLS_CERT_ALTNAME_INVALID"])(
    "says %s is a TLS refusal",
    (code) => expect(isTlsRefusal({ code })).toBe(true)
  )

  it("says a system error, a SQLSTATE or no code is not", () => {
    expect(isTlsRefusal({ code: "ECONNREFUSED", errno: -111 })).toBe(false)
    expect(isTlsRefusal({ code: "28P01" })).toBe(false)
    expect(isTlsRefusal({})).toBe(false)
  })
})
