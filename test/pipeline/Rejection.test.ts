import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { detectionResult, pythonJson, seededRng } from "../../src/produce/DetectorOutput.ts"
import {
  clickhouseCounts,
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
import { kafkaFor } from "../support/services.ts"

describe("a record a store refuses for good", () => {
  let deployment: Deployment
  beforeAll(async () => {
    deployment = await freshDeployment()
    await sentinel(deployment.env, "migrate")
  })
  afterAll(() => deployment.drop())

  it("becomes a dead letter on its own, and every other record of its batch is persisted", async () => {
    const tally = await produce(
      deployment.env,
      "--count",
      "2000",
      "--malformed",
      "0",
      "--duplicates",
      "0",
      "--seed",
      "3"
    )
    // Valid by the contract, but PostgreSQL text cannot hold a NUL character: a permanent refusal
    // of this one record (ClickHouse strings can, so its analytics rows land).
    const poisoned = { ...detectionResult(seededRng(99), 1_000_000), severity: "HIGH" as const, fraud_score: 0.85 }
    poisoned.transaction = { ...poisoned.transaction, merchant_category: "grocery\u0000" }
    const producer = kafkaFor().producer()
    await producer.connect()
    await producer.send({
      topic: deployment.env.SENTINEL_TOPIC_DETECTIONS!,
      messages: [{ key: poisoned.transaction.user_id, value: pythonJson(poisoned) }]
    })
    await producer.disconnect()

    const daemon = startDaemon(deployment.env)
    await waitFor("every record committed and every alert relayed", () => drained(deployment, tally.alerts))
    expect(await stopDaemon(daemon), daemon.output()).toEqual({ code: 0, signal: null })

    const deadLetters = await pgQuery<{ error_kind: string; error_message: string; source_topic: string }>(
      deployment.databaseUrl,
      "SELECT error_kind, error_message, source_topic FROM dead_letters"
    )
    expect(deadLetters).toHaveLength(1)
    expect(deadLetters[0]).toMatchObject({
      error_kind: "rejected_by_postgres",
      source_topic: deployment.env.SENTINEL_TOPIC_DETECTIONS
    })
    expect(deadLetters[0]!.error_message).not.toBe("")
    const [alerts] = await pgQuery<{ n: string }>(deployment.databaseUrl, "SELECT count(*) AS n FROM fraud_alerts")
    expect(Number(alerts!.n)).toBe(tally.alerts)
    const detections = Object.values(tally.detections).reduce((a, b) => a + b, 0)
    expect(await clickhouseCounts(deployment, ["detection_results"])).toEqual({ detection_results: detections + 1 })
  })
})
