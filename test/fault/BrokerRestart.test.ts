import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { expectExactlyOnce } from "../pipeline/expected.ts"
import {
  alertCount,
  type Deployment,
  drained,
  freshDeployment,
  produce,
  sentinel,
  startDaemon,
  stopDaemon,
  waitFor
} from "../support/daemon.ts"
import { type PrivateKafka, privateKafka } from "./privateKafka.ts"
import { rssBoundMb, rssOf } from "./rss.ts"

describe("the Kafka broker restarted mid-stream", () => {
  let kafka: PrivateKafka
  let deployment: Deployment
  beforeAll(async () => {
    kafka = await privateKafka()
    deployment = await freshDeployment({ KAFKA_BROKERS: kafka.brokers })
    await sentinel(deployment.env, "migrate")
  }, 240_000)
  afterAll(async () => {
    await deployment.drop()
    await kafka.remove()
  })

  it("reconnects, continues from committed offsets, and ends with exact counts", async () => {
    const alerts = () => alertCount(deployment)
    const first = await produce(
      deployment.env,
      "--count",
      "10000",
      "--malformed",
      "0.02",
      "--duplicates",
      "0.02",
      "--seed",
      "31"
    )
    const daemon = startDaemon(deployment.env)
    await waitFor("some alerts before the restart", async () => (await alerts()) > 100 ? true : undefined)

    await kafka.restart()
    const restarted = Date.now()
    const atRestart = await alerts()
    const peakRss = rssOf(daemon.child.pid!)
    // Records produced after the restart: their alerts prove the daemon reconnected.
    const producing = produce(
      deployment.env,
      "--count",
      "10000",
      "--malformed",
      "0.02",
      "--duplicates",
      "0.02",
      "--seed",
      "32",
      "--first",
      "10000"
    )
    await waitFor("alerts to flow again", async () => (await alerts()) > atRestart ? true : undefined, 60_000)
    const recoveredWithin = Date.now() - restarted
    const second = await producing
    const tally = sum(first, second)
    await waitFor("every record committed and every alert relayed", () => drained(deployment, tally.alerts), 180_000)
    expect(await stopDaemon(daemon), daemon.output()).toEqual({ code: 0, signal: null })
    await expectExactlyOnce(deployment, tally)
    expect(peakRss).toBeLessThan(rssBoundMb)
    // Usually a few seconds; a rejoin may wait out the previous member's 30 s session, whose state the
    // broker reloads on restart, so the bound is that timeout plus the time to produce and write.
    expect(recoveredWithin).toBeLessThan(45_000)
    console.log(JSON.stringify({ rssMbAtRestart: Math.round(peakRss), recoveredWithinMs: recoveredWithin }))
  })
})

type Tally = Awaited<ReturnType<typeof produce>>

const add = <K extends string>(a: Record<K, number>, b: Record<K, number>) =>
  Object.fromEntries(Object.keys(a).map((k) => [k, a[k as K] + b[k as K]])) as Record<K, number>

const sum = (a: Tally, b: Tally): Tally => ({
  records: a.records + b.records,
  malformed: add(a.malformed, b.malformed),
  detections: add(a.detections, b.detections),
  alerts: a.alerts + b.alerts,
  duplicates: a.duplicates + b.duplicates,
  metrics: a.metrics + b.metrics,
  transactions: a.transactions + b.transactions,
  audits: a.audits + b.audits
})
