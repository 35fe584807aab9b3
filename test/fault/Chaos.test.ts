import * as fs from "node:fs"
import * as path from "node:path"
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
import { projectRoot, uniqueName } from "../support/services.ts"
import { type PrivateKafka, privateKafka } from "./privateKafka.ts"
import { type PrivatePostgres, privatePostgres } from "./privatePostgres.ts"
import { rssBoundMb, rssOf } from "./rss.ts"

describe("chaos: a PostgreSQL outage, a ClickHouse outage, a broker restart and two SIGKILLs in one run", () => {
  let postgres: PrivatePostgres
  let kafka: PrivateKafka
  let deployment: Deployment
  let control: string
  beforeAll(async () => {
    postgres = await privatePostgres()
    kafka = await privateKafka()
    control = path.join(projectRoot, ".sentinel", "data", `${uniqueName("faults")}.control`)
    deployment = await freshDeployment({
      DATABASE_URL: postgres.url,
      KAFKA_BROKERS: kafka.brokers,
      SENTINEL_CLICKHOUSE_FAULTS: control,
      SENTINEL_SINK_TIMEOUT_MS: "3000"
    })
    deployment = { ...deployment, databaseUrl: postgres.url }
    await sentinel(deployment.env, "migrate")
  }, 300_000)
  afterAll(async () => {
    fs.rmSync(control, { force: true })
    await deployment.drop()
    await kafka.remove()
    await postgres.remove()
  })

  it("ends 50,000 records with malformed and re-sent ones with exactly the expected rows", async () => {
    const alerts = () => alertCount(deployment)
    const flowing = (what: string) => alertsFlowAgain(deployment, what)
    let peakRss = 0
    const watch = async (pid: number, ms: number) => {
      for (let waited = 0; waited < ms; waited += 500) {
        peakRss = Math.max(peakRss, rssOf(pid))
        await sleep(500)
      }
    }
    const producing = produce(
      deployment.env,
      "--count",
      "50000",
      "--rate",
      "4000",
      "--malformed",
      "0.03",
      "--duplicates",
      "0.02",
      "--seed",
      "77"
    )

    const first = startDaemon(deployment.env)
    await waitFor("some alerts first", async () => (await alerts()) > 100 ? true : undefined)
    await postgres.stop()
    await watch(first.child.pid!, 5_000)
    await postgres.start()
    await flowing("alerts after the PostgreSQL outage")
    await sleep(Math.floor(Math.random() * 2_000))
    expect(await stopDaemon(first, "SIGKILL")).toEqual({ code: null, signal: "SIGKILL" })

    const second = startDaemon(deployment.env)
    await flowing("alerts after the first SIGKILL")
    fs.writeFileSync(control, "fail")
    await watch(second.child.pid!, 5_000)
    fs.writeFileSync(control, "ok")
    await kafka.restart()
    await flowing("alerts after the broker restart")
    await sleep(Math.floor(Math.random() * 2_000))
    expect(await stopDaemon(second, "SIGKILL")).toEqual({ code: null, signal: "SIGKILL" })

    const tally = await producing
    const last = startDaemon(deployment.env)
    await waitFor("every record committed and every alert relayed", () => drained(deployment, tally.alerts), 300_000)
    expect(await stopDaemon(last), last.output()).toEqual({ code: 0, signal: null })
    await expectExactlyOnce(deployment, tally)
    expect(peakRss).toBeLessThan(rssBoundMb)
    console.log(JSON.stringify({ records: tally.records, alerts: tally.alerts, peakRssMb: Math.round(peakRss) }))
  }, 600_000)
})
