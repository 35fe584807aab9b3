import { afterAll, beforeAll, describe, expect, it } from "vitest"
import {
  consumerLag,
  type Deployment,
  drained,
  freshDeployment,
  pgQuery,
  produce,
  sentinel,
  startDaemon,
  stopDaemon,
  waitFor
} from "../support/daemon.ts"
import { expectExactlyOnce } from "./expected.ts"

describe("sentinel run: Kafka → PostgreSQL + ClickHouse, exactly once", () => {
  let deployment: Deployment
  beforeAll(async () => {
    deployment = await freshDeployment()
    await sentinel(deployment.env, "migrate")
  })
  afterAll(() => deployment.drop())

  it("persists 10,000 records with 5% malformed and 2% duplicated as exactly the expected rows", async () => {
    const tally = await produce(
      deployment.env,
      "--count",
      "10000",
      "--malformed",
      "0.05",
      "--duplicates",
      "0.02",
      "--seed",
      "42"
    )
    expect(tally.records).toBe(10_000)
    expect(tally.duplicates).toBe(200)

    const daemon = startDaemon(deployment.env)
    await waitFor("every record committed and every alert relayed", () => drained(deployment, tally.alerts))
    const exit = await stopDaemon(daemon)
    expect(exit, daemon.output()).toEqual({ code: 0, signal: null })
    expect(await consumerLag(deployment)).toBe(0)
    await expectExactlyOnce(deployment, tally)

    // The contract's quirks were persisted, not dead-lettered: rules-only results (null ML fields)
    // and locations sent as numbers.
    const [quirks] = await pgQuery<{ rules_only: string; numeric_locations: string }>(
      deployment.databaseUrl,
      `SELECT count(*) FILTER (WHERE ml_prediction IS NULL) AS rules_only,
              count(*) FILTER (WHERE location_country ~ '^[0-9]+$') AS numeric_locations
         FROM fraud_alerts`
    )
    expect(Number(quirks!.rules_only)).toBeGreaterThan(0)
    expect(Number(quirks!.numeric_locations)).toBeGreaterThan(0)
  })
})
