/**
 * ClickHouse over https. There is no ClickHouse server here (chDB runs in-process, without one), so
 * this proves what can be proved without one: the configured files reach `createClient`, and the
 * client then checks the server against that CA and presents that certificate in a real TLS
 * handshake (with a TLS endpoint that only watches the handshake and answers nothing).
 */
import { createClient } from "@clickhouse/client"
import { ConfigProvider, Effect, Either } from "effect"
import * as fs from "node:fs"
import type { AddressInfo } from "node:net"
import * as tls from "node:tls"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { load } from "../../src/config/Config.ts"
import { clientConfig } from "../../src/sinks/clickhouse/ClickHouse.ts"
import { type Certificates, makeCertificates } from "./certificates.ts"

const targetFrom = (env: Record<string, string>) =>
  Either.getOrThrow(
    Effect.runSync(Effect.either(Effect.withConfigProvider(load, ConfigProvider.fromMap(new Map(Object.entries(env))))))
  ).clickhouse.target

describe("ClickHouse over TLS", () => {
  let certificates: Certificates
  beforeAll(async () => {
    certificates = await makeCertificates()
  }, 60_000)

  it("passes the CA, client certificate and key from the configuration to createClient", () => {
    const config = clientConfig(targetFrom({
      CLICKHOUSE_URL: "https://ch.example:8443",
      CLICKHOUSE_USER: "sentinel",
      CLICKHOUSE_PASSWORD: "p",
      CLICKHOUSE_CA_FILE: certificates.caFile,
      CLICKHOUSE_CERT_FILE: certificates.certFile,
      CLICKHOUSE_KEY_FILE: certificates.keyFile
    }))
    expect(config).toMatchObject({ url: "https://ch.example:8443", username: "sentinel", password: "p" })
    expect(config.tls).toEqual({
      ca_cert: fs.readFileSync(certificates.caFile),
      cert: fs.readFileSync(certificates.certFile),
      key: fs.readFileSync(certificates.keyFile)
    })
    expect(
      clientConfig(targetFrom({ CLICKHOUSE_URL: "https://ch.example:8443", CLICKHOUSE_CA_FILE: certificates.caFile }))
        .tls
    )
      .toEqual({ ca_cert: fs.readFileSync(certificates.caFile) })
    // An https:// URL alone trusts the system's CAs.
    expect(clientConfig(targetFrom({ CLICKHOUSE_URL: "https://ch.example:8443" })).tls).toBeUndefined()
  })

  describe("the handshake", () => {
    // A TLS endpoint that asks for a client certificate signed by the test CA and records what it saw.
    const seen: Array<{ readonly authorized: boolean; readonly client: string }> = []
    let server: tls.Server
    let url = ""
    beforeAll(async () => {
      server = tls.createServer({
        cert: fs.readFileSync(certificates.certFile),
        key: fs.readFileSync(certificates.keyFile),
        ca: fs.readFileSync(certificates.caFile),
        requestCert: true,
        rejectUnauthorized: false
      }, (socket) => {
        seen.push({ authorized: socket.authorized, client: String(socket.getPeerCertificate().subject?.CN) })
        socket.destroy()
      })
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
      url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`
    })
    afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())))

    const ping = async (env: Record<string, string>) => {
      const client = createClient(clientConfig(targetFrom({ CLICKHOUSE_URL: url, ...env })))
      try {
        return await client.ping()
      } finally {
        await client.close()
      }
    }

    it("checks the server against the configured CA and presents the configured certificate", async () => {
      seen.length = 0
      await ping({
        CLICKHOUSE_CA_FILE: certificates.caFile,
        CLICKHOUSE_CERT_FILE: certificates.certFile,
        CLICKHOUSE_KEY_FILE: certificates.keyFile
      })
      // The handshake completed: the client trusted the server, the server saw the client's certificate.
      expect(seen[0]).toEqual({ authorized: true, client: "127.0.0.1" })
    })

    it("refuses a server the configured CA did not sign", async () => {
      seen.length = 0
      const result = await ping({ CLICKHOUSE_CA_FILE: certificates.otherCaFile })
      expect(result.success).toBe(false)
      expect(String(!result.success && result.error)).toMatch(/certificate/i)
      expect(seen).toEqual([])
    })
  })
})
