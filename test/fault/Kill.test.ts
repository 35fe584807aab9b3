import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { expectExactlyOnce } from "../pipeline/expected.ts"
import {
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

describe("the daemon killed with SIGKILL at random points, several times", () => {
  let deployment: Deployment
  beforeAll(async () => {
    deployment = await freshDeployment()
    await sentinel(deployment.env, "migrate")
  })
  afterAll(() => deployment.drop())

  it("loses and doubles nothing", async () => {
    const producing = produce(
      deployment.env,
      "--count",
      "20000",
      "--rate",
      "2500",
      "--malformed",
      "0.03",
      "--duplicates",
      "0.02",
      "--seed",
      "13"
    )
    const kills: Array<number> = []
    for (let round = 0; round < 3; round++) {
      const daemon = startDaemon(deployment.env)
      // Somewhere between start-up and the middle of its work; the exact point is left to chance.
      const after = 3_000 + Math.floor(Math.random() * 5_000)
      await sleep(after)
      expect(await stopDaemon(daemon, "SIGKILL")).toEqual({ code: null, signal: "SIGKILL" })
      kills.push(after)
    }
    const tally = await producing
    const last = startDaemon(deployment.env)
    await waitFor("every record committed and every alert relayed", () => drained(deployment, tally.alerts), 180_000)
    expect(await stopDaemon(last), last.output()).toEqual({ code: 0, signal: null })
    await expectExactlyOnce(deployment, tally)
    console.log(JSON.stringify({ killedAfterMs: kills }))
  })
})
