import { afterEach, describe, expect, it } from "vitest"
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
import { expectExactlyOnce } from "./expected.ts"

/**
 * Produces 10,000 records at a steady rate while a daemon consumes them, interrupts that daemon
 * with `signal` once it has persisted part of the stream, then lets a second daemon finish.
 */
const interruptedRun = async (deployment: Deployment, signal: NodeJS.Signals) => {
  await sentinel(deployment.env, "migrate")
  const producing = produce(
    deployment.env,
    "--count",
    "10000",
    "--rate",
    "2500",
    "--malformed",
    "0.05",
    "--duplicates",
    "0.02",
    "--seed",
    "7"
  )
  const first = startDaemon(deployment.env)
  await waitFor(
    "the first daemon to persist some alerts",
    async () => (await alertCount(deployment)) > 50 ? true : undefined
  )
  await sleep(Math.floor(Math.random() * 1000))
  const exit = await stopDaemon(first, signal)
  const tally = await producing
  const second = startDaemon(deployment.env)
  await waitFor("every record committed and every alert relayed", () => drained(deployment, tally.alerts))
  expect(await stopDaemon(second), second.output()).toEqual({ code: 0, signal: null })
  await expectExactlyOnce(deployment, tally)
  return { exit, first }
}

describe("a daemon stopped mid-stream", () => {
  let deployment: Deployment | undefined
  afterEach(() => deployment?.drop())

  it("stopped by SIGTERM, then restarted, ends with the same exact counts", async () => {
    deployment = await freshDeployment()
    const { exit, first } = await interruptedRun(deployment, "SIGTERM")
    expect(exit, first.output()).toEqual({ code: 0, signal: null })
  })

  it("killed by SIGKILL mid-batch, then restarted, ends with the same exact counts", async () => {
    deployment = await freshDeployment()
    const { exit } = await interruptedRun(deployment, "SIGKILL")
    expect(exit).toEqual({ code: null, signal: "SIGKILL" })
  })
})
