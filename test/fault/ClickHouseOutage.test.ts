import * as fs from "node:fs"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { expectExactlyOnce } from "../pipeline/expected.ts"
import {
  type Deployment,
  drained,
  freshDeployment,
  pgQuery,
  produce,
  sentinel,
  sleep,
  startDaemon,
  stopDaemon,
  waitFor
} from "../support/daemon.ts"
import { projectRoot, uniqueName } from "../support/services.ts"
import { rssBoundMb, rssOf } from "./rss.ts"

describe("ClickHouse failing, then hanging, mid-stream", () => {
  let deployment: Deployment
  let control: string
  beforeAll(async () => {
    control = path.join(projectRoot, ".sentinel", "data", `${uniqueName("faults")}.control`)
    deployment = await freshDeployment({ SENTINEL_CLICKHOUSE_FAULTS: control, SENTINEL_SINK_TIMEOUT_MS: "3000" })
    await sentinel(deployment.env, "migrate")
  })
  afterAll(async () => {
    fs.rmSync(control, { force: true })
    await deployment.drop()
  })

  it("keeps alerts flowing into PostgreSQL, grows the outbox durably, then drains exactly once", async () => {
    const count = async (sql: string) => Number((await pgQuery<{ n: string }>(deployment.databaseUrl, sql))[0]?.n)
    const alerts = () => count("SELECT count(*) AS n FROM fraud_alerts")
    const backlog = () => count("SELECT count(*) AS n FROM outbox WHERE published_at IS NULL")

    const daemon = startDaemon(deployment.env)
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
      "5"
    )
    await waitFor("some alerts before the outage", async () => (await alerts()) > 50 ? true : undefined)

    fs.writeFileSync(control, "fail")
    const atFailure = await alerts()
    // New alerts still land in PostgreSQL within seconds, and wait in the outbox.
    await waitFor("alerts during the outage", async () => (await alerts()) > atFailure + 100 ? true : undefined, 15_000)
    await waitFor("the outbox backlog to grow", async () => (await backlog()) > 0 ? true : undefined, 15_000)
    let peakRss = 0
    for (let i = 0; i < 10; i++) {
      peakRss = Math.max(peakRss, rssOf(daemon.child.pid!))
      await sleep(500)
    }
    fs.writeFileSync(control, "hang")
    for (let i = 0; i < 10; i++) {
      peakRss = Math.max(peakRss, rssOf(daemon.child.pid!))
      await sleep(500)
    }
    expect(daemon.child.exitCode, daemon.output()).toBeNull()

    fs.writeFileSync(control, "ok")
    const recovered = Date.now()
    await waitFor("the outbox to drain", async () => (await backlog()) === 0 ? true : undefined, 30_000)
    const recoveredWithin = Date.now() - recovered
    const tally = await producing
    await waitFor("every record committed and every alert relayed", () => drained(deployment, tally.alerts))
    expect(await stopDaemon(daemon), daemon.output()).toEqual({ code: 0, signal: null })
    await expectExactlyOnce(deployment, tally)
    expect(peakRss).toBeLessThan(rssBoundMb)
    console.log(JSON.stringify({ peakRssMbDuringOutage: Math.round(peakRss), recoveredWithinMs: recoveredWithin }))
  })
})
