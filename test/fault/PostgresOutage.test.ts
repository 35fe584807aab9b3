import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { expectExactlyOnce } from "../pipeline/expected.ts"
import {
  alertCount,
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
import { type PrivatePostgres, privatePostgres } from "./privatePostgres.ts"
import { rssBoundMb, rssOf } from "./rss.ts"

/** The daemon's resident memory must stay under this during an outage (its chDB engine included). */
describe("PostgreSQL stopped mid-stream and started again", () => {
  let postgres: PrivatePostgres
  let deployment: Deployment
  beforeAll(async () => {
    postgres = await privatePostgres()
    deployment = await freshDeployment({ DATABASE_URL: postgres.url })
    deployment = { ...deployment, databaseUrl: postgres.url }
    await sentinel(deployment.env, "migrate")
  })
  afterAll(async () => {
    await postgres.remove()
    await deployment.drop()
  })

  it("pauses the alert path, loses and doubles nothing, and recovers by itself", async () => {
    const producing = produce(
      deployment.env,
      "--count",
      "20000",
      "--rate",
      "4000",
      "--malformed",
      "0.02",
      "--duplicates",
      "0.02",
      "--seed",
      "21"
    )
    const daemon = startDaemon(deployment.env)
    const alerts = () => alertCount(deployment)
    await waitFor("some alerts before the outage", async () => (await alerts()) > 100 ? true : undefined)
    await postgres.stop()
    let peakRss = 0
    for (let i = 0; i < 20; i++) {
      peakRss = Math.max(peakRss, rssOf(daemon.child.pid!))
      await sleep(500)
    }
    expect(daemon.child.exitCode, daemon.output()).toBeNull()
    await postgres.start()
    const restarted = Date.now()
    const before = await alerts()
    // Recovered: the daemon, untouched, writes alerts again.
    await waitFor("alerts to flow again", async () => (await alerts()) > before ? true : undefined, 30_000)
    const recoveredWithin = Date.now() - restarted
    const tally = await producing
    await waitFor("every record committed and every alert relayed", () => drained(deployment, tally.alerts))
    expect(await stopDaemon(daemon), daemon.output()).toEqual({ code: 0, signal: null })
    await expectExactlyOnce(deployment, tally)
    expect(peakRss).toBeLessThan(rssBoundMb)
    expect(recoveredWithin).toBeLessThan(30_000)
    console.log(JSON.stringify({ peakRssMbDuringOutage: Math.round(peakRss), recoveredWithinMs: recoveredWithin }))
  })
})
