/**
 * `sentinel run` while it starts, when PostgreSQL is not there yet: down (connections refused) or
 * black-holed (accepted, never answered). The daemon waits for it as for an outage later on, within
 * the retry policy's bound; an orchestrator's SIGTERM meanwhile stops it cleanly (exit 0) instead of
 * killing it by the signal.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { postgresProxy, type TcpProxy } from "../fault/tcpProxy.ts"
import { expectExactlyOnce } from "../pipeline/expected.ts"
import {
  type Deployment,
  drained,
  freshDeployment,
  produce,
  sentinel,
  startDaemon,
  stopDaemon,
  waitFor
} from "../support/daemon.ts"

describe("sentinel run starting before PostgreSQL answers", () => {
  let deployment: Deployment
  let proxy: TcpProxy
  /** The deployment's environment with PostgreSQL reached through the proxy. */
  let proxied: Record<string, string>

  beforeAll(async () => {
    deployment = await freshDeployment()
    await sentinel(deployment.env, "migrate")
    const through = await postgresProxy(deployment.databaseUrl)
    proxy = through.proxy
    proxied = { ...deployment.env, DATABASE_URL: through.url }
  })
  afterAll(async () => {
    await proxy.close()
    await deployment.drop()
  })

  it("exits 0 on SIGTERM while it waits for PostgreSQL", async () => {
    await proxy.setMode("stall")
    const before = proxy.accepted()
    const daemon = startDaemon(proxied)
    await waitFor("the daemon connecting to PostgreSQL", async () => (proxy.accepted() > before ? true : undefined))
    daemon.child.kill("SIGTERM")
    const exit = await daemon.exited
    expect(exit, daemon.output()).toEqual({ code: 0, signal: null })
    expect(daemon.output()).toContain("sentinel stopped during start-up")
    expect(daemon.output()).not.toContain("sentinel running")
  })

  it("gives up once the retry bound has passed, exit 1 with the reason", async () => {
    await proxy.setMode("stall")
    // Each attempt waits out the 10 s connection timeout; the bound stops it after the second.
    const daemon = startDaemon({ ...proxied, SENTINEL_RETRY_MAX_ELAPSED_MS: "3000" })
    const exit = await daemon.exited
    expect(exit, daemon.output()).toEqual({ code: 1, signal: null })
    expect(daemon.output()).toContain("postgres call failed, retry 1")
    // Said by whichever of the driver's and the client's 10 s timeouts fires first.
    expect(daemon.output()).toMatch(/sentinel run: PgClient: .*(timed out|timeout)/)
  })

  it("waits while PostgreSQL refuses connections, then runs and persists everything", async () => {
    await proxy.setMode("refuse")
    const tally = await produce(deployment.env, "--count", "2000", "--seed", "41")
    const daemon = startDaemon(proxied)
    await waitFor(
      "a retry of the refused connection",
      async () => (daemon.output().includes("postgres call failed, retry") ? true : undefined),
      60_000
    )
    expect(daemon.output()).not.toContain("sentinel running")
    await proxy.setMode("pass")
    await waitFor("every record committed and every alert relayed", () => drained(deployment, tally.alerts), 180_000)
    expect(await stopDaemon(daemon), daemon.output()).toEqual({ code: 0, signal: null })
    await expectExactlyOnce(deployment, tally)
  })
})
