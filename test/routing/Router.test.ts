import { describe, expect, it } from "vitest"
import type { Topics } from "../../src/config/Config.ts"
import { plan, tally } from "../../src/produce/DetectorOutput.ts"
import { alertSeverities, route, topicKinds } from "../../src/routing/Router.ts"
import type { KafkaRecord } from "../../src/source/KafkaRecord.ts"

const topics: Topics = {
  detections: "fraud-detection-results",
  metrics: "performance-metrics",
  transactions: "transaction-records",
  audits: "audit-events"
}
const topicOf = {
  detection: topics.detections,
  metric: topics.metrics,
  transaction: topics.transactions,
  audit: topics.audits
}

const recordsOf = (count: number, seed: number): { records: Array<KafkaRecord>; planned: ReturnType<typeof tally> } => {
  const messages = [...plan({ count, seed, malformedShare: 0.05, duplicateShare: 0.02 })]
  const records = messages.map((m, i): KafkaRecord => ({
    topic: topicOf[m.topic],
    partition: i % 6,
    offset: String(i),
    timestamp: 1_700_000_000_000 + i,
    key: m.key,
    headers: m.headers,
    value: m.value
  }))
  return { records, planned: tally(messages) }
}

describe("Router", () => {
  it("sends every record to exactly one place: its tables or the dead letters", () => {
    const { planned, records } = recordsOf(5000, 7)
    const routed = route(topicKinds(topics), records)
    const malformed = Object.values(planned.malformed).reduce((a, b) => a + b, 0)
    expect(routed.deadLetters).toHaveLength(malformed)
    // Duplicates are routed again (the sinks make them no-ops); every detection goes to analytics.
    const detections = Object.values(planned.detections).reduce((a, b) => a + b, 0) + planned.duplicates
    expect(routed.detections).toHaveLength(detections)
    expect(routed.metrics).toHaveLength(planned.metrics)
    expect(routed.transactions).toHaveLength(planned.transactions)
    expect(routed.audits).toHaveLength(planned.audits)
    expect(routed.deadLetters.length + detections + planned.metrics + planned.transactions + planned.audits).toBe(
      records.length
    )
  })

  it("raises alerts for MEDIUM, HIGH and CRITICAL only", () => {
    const { records } = recordsOf(3000, 11)
    const routed = route(topicKinds(topics), records)
    expect(routed.alerts.length).toBeGreaterThan(0)
    expect(routed.alerts.every((a) => alertSeverities.has(a.result.severity))).toBe(true)
    expect(routed.alerts).toHaveLength(routed.detections.filter((d) => alertSeverities.has(d.result.severity)).length)
    expect([...alertSeverities].sort()).toEqual(["CRITICAL", "HIGH", "MEDIUM"])
  })

  it("dead-letters a record of an unknown topic, and an empty value, with their reasons", () => {
    const base = { partition: 0, timestamp: 0, key: null, headers: {} }
    const routed = route(topicKinds(topics), [
      { ...base, topic: "elsewhere", offset: "1", value: Buffer.from("{}") },
      { ...base, topic: topics.detections, offset: "2", value: null }
    ])
    expect(routed.deadLetters.map((d) => [d.kind, d.message])).toEqual([
      ["unknown_topic", "no route for topic elsewhere"],
      ["empty", "the record has no value"]
    ])
  })
})
