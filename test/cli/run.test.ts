/**
 * `sentinel run` while it starts, against a PostgreSQL that accepts connections and never answers
 * (a black-holed route): an orchestrator's SIGTERM stops it cleanly (exit 0) instead of killing it
 * by the signal, and left alone it gives up with a reason instead of hanging.
 */
import * as net from "node:net"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Deployment, freshDeployment, startDaemon, waitFor } from "../support/daemon.ts"

describe("sentinel run starting against a PostgreSQL that never answers", () => {
  let deployment: Deployment
  const sockets = new Set<net.Socket>()
  const silent = net.createServer((socket) => {
    sockets.add(socket)
    socket.on("close", () => sockets.delete(socket))
  })
  let env: Record<string, string>

  beforeAll(async () => {
    deployment = await freshDeployment()
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve))
    const { port } = silent.address() as net.AddressInfo
    env = { ...deployment.env, DATABASE_URL: `postgres://sentinel@127.0.0.1:${port}/sentinel` }
  })
  afterAll(async () => {
    for (const socket of sockets) socket.destroy()
    await new Promise((resolve) => silent.close(resolve))
    await deployment.drop()
  })

  it("exits 0 on SIGTERM while it waits for PostgreSQL", async () => {
    const daemon = startDaemon(env)
    await waitFor("the daemon connecting to PostgreSQL", async () => (sockets.size > 0 ? true : undefined), 60_000)
    daemon.child.kill("SIGTERM")
    const exit = await daemon.exited
    expect(exit, daemon.output()).toEqual({ code: 0, signal: null })
    expect(daemon.output()).toContain("sentinel stopped during start-up")
    expect(daemon.output()).not.toContain("sentinel running")
  })

  it("gives up after the connection timeout with a reason, exit 1", async () => {
    const daemon = startDaemon(env)
    const exit = await daemon.exited
    expect(exit, daemon.output()).toEqual({ code: 1, signal: null })
    // Said by whichever of the driver's and the client's 10 s timeouts fires first.
    expect(daemon.output()).toMatch(/sentinel run: PgClient: .*(timed out|timeout)/)
  })
})
