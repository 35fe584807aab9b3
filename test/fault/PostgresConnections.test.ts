import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { expectExactlyOnce } from "../pipeline/expected.ts"
import {
  alertCount,
  alertsFlowAgain,
  type Deployment,
  drained,
  freshDeployment,
  produce,
  sentinel,
  sleep,
  startDaemon,
  stopDaemon,
  waitFor
} from "../support/daemon.ts"
import { rssBoundMb, rssOf } from "./rss.ts"
import { postgresProxy, type TcpProxy } from "./tcpProxy.ts"

describe("PostgreSQL connections refused, reset and stalled by a proxy", () => {
  let deployment: Deployment
  let proxy: TcpProxy
  beforeAll(async () => {
    deployment = await freshDeployment()
    await sentinel(deployment.env, "migrate")
    const proxied = await postgresProxy(deployment.databaseUrl)
    proxy = proxied.proxy
    deployment = {
      ...deployment,
      env: { ...deployment.env, DATABASE_URL: proxied.url, SENTINEL_SINK_TIMEOUT_MS: "3000" }
    }
  })
  afterAll(async () => {
    await proxy.close()
    await deployment.drop()
  })

  it("retries through every kind of cut and ends with exact counts", async () => {
    // Verification reads PostgreSQL directly, not through the proxy.
    const alerts = () => alertCount(deployment)
    const producing = produce(
      deployment.env,
      "--count",
      "20000",
      "--rate",
      "2500",
      "--malformed",
      "0.02",
      "--duplicates",
      "0.02",
      "--seed",
      "17"
    )
    const daemon = startDaemon(deployment.env)
    await waitFor("some alerts first", async () => (await alerts()) > 100 ? true : undefined)
    let peakRss = 0
    const hold = async (ms: number) => {
      for (let waited = 0; waited < ms; waited += 500) {
        peakRss = Math.max(peakRss, rssOf(daemon.child.pid!))
        await sleep(500)
      }
    }
    const recoveries: Record<string, number> = {}
    const fault = async (name: string, start: () => Promise<void> | void, ms: number) => {
      await start()
      await hold(ms)
      await proxy.setMode("pass")
      const ended = Date.now()
      await alertsFlowAgain(deployment, `alerts to flow again after ${name}`, 30_000)
      recoveries[name] = Date.now() - ended
    }
    await fault("reset", () => proxy.resetAll(), 1_000)
    await fault("refuse", () => proxy.setMode("refuse"), 5_000)
    await fault("stall", () => proxy.setMode("stall"), 6_000)
    expect(daemon.child.exitCode, daemon.output()).toBeNull()

    const tally = await producing
    await waitFor("every record committed and every alert relayed", () => drained(deployment, tally.alerts), 180_000)
    expect(await stopDaemon(daemon), daemon.output()).toEqual({ code: 0, signal: null })
    await expectExactlyOnce(deployment, tally)
    expect(peakRss).toBeLessThan(rssBoundMb)
    for (const within of Object.values(recoveries)) expect(within).toBeLessThan(30_000)
    console.log(JSON.stringify({ peakRssMb: Math.round(peakRss), recoveredWithinMs: recoveries }))
  })
})
