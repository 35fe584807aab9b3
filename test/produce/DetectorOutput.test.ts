import { describe, expect, it } from "@effect/vitest"
import { Either } from "effect"
import { decode } from "../../src/contract/Decode.ts"
import type { Severity } from "../../src/contract/DetectionResult.ts"
import {
  detectionResult,
  type DetectionResultWire,
  featureKeys,
  plan,
  type PlannedMessage,
  pythonJson,
  seededRng,
  tally
} from "../../src/produce/DetectorOutput.ts"

const detections = (seed: number, count: number, options: Parameters<typeof detectionResult>[2] = {}) => {
  const rng = seededRng(seed)
  return Array.from({ length: count }, (_, n) => detectionResult(rng, n, options))
}

const share = <A>(items: ReadonlyArray<A>, test: (item: A) => boolean): number =>
  items.filter(test).length / items.length

const severityFloor: Record<Severity, number> = { MINIMAL: 0, LOW: 0.4, MEDIUM: 0.6, HIGH: 0.8, CRITICAL: 0.9 }
const isAlert = (severity: Severity) => severity === "MEDIUM" || severity === "HIGH" || severity === "CRITICAL"

describe("detection results", () => {
  it("are the same for the same seed and differ for another", () => {
    expect(detections(5, 200).map(pythonJson)).toStrictEqual(detections(5, 200).map(pythonJson))
    expect(detections(6, 200).map(pythonJson)).not.toStrictEqual(detections(5, 200).map(pythonJson))
  })

  it("follow the default severity mix", () => {
    const results = detections(1, 20_000)
    const expected: Record<Severity, number> = { MINIMAL: 0.55, LOW: 0.25, MEDIUM: 0.1, HIGH: 0.07, CRITICAL: 0.03 }
    for (const [severity, target] of Object.entries(expected)) {
      expect(share(results, (result) => result.severity === severity), severity).toBeCloseTo(target, 1.5)
    }
  })

  it("honour the alert share", () => {
    const results = detections(2, 20_000, { alertShare: 0.1 })
    expect(Math.abs(share(results, (result) => isAlert(result.severity)) - 0.1)).toBeLessThan(0.01)
    expect(share(results, (result) => result.severity === "MINIMAL")).toBeGreaterThan(0.55)
  })

  it("score consistently with the detector's thresholds", () => {
    for (const result of detections(3, 5000)) {
      const floor = severityFloor[result.severity]
      const next = Object.values(severityFloor).find((threshold) => threshold > floor) ?? 1.0000001
      expect(result.fraud_score).toBeGreaterThanOrEqual(floor)
      expect(result.fraud_score).toBeLessThan(next)
      expect(result.is_fraud).toBe(result.fraud_score >= 0.3)
    }
  })

  it("run rules-only in about the configured share, with the ML fields null", () => {
    const results = detections(4, 10_000)
    const rulesOnly = results.filter((result) => result.ml_prediction === null)
    expect(Math.abs(rulesOnly.length / results.length - 0.15)).toBeLessThan(0.015)
    for (const result of results) {
      const metadata = result.detection_metadata
      if (result.ml_prediction === null) {
        expect(metadata).toMatchObject({ ml_model_version: null, ml_prediction: null, ml_confidence: null })
        expect(metadata.business_rules_score).toBe(result.fraud_score)
      } else {
        expect(typeof metadata.ml_model_version).toBe("string")
        expect(metadata.business_rules_score).toBeNull()
      }
    }
  })

  it("carry the 16 features with their types, the same in the metadata", () => {
    const integers = new Set(["transaction_hour", "transaction_day", "daily_transaction_count"])
    const booleans = new Set(["is_high_amount", "is_unusual_hour", "is_rapid_transaction", "is_fraud_alert"])
    for (const result of detections(5, 500)) {
      expect(Object.keys(result.features)).toStrictEqual([...featureKeys])
      for (const [key, value] of Object.entries(result.features)) {
        if (key === "user_id" || key === "transaction_id") expect(typeof value, key).toBe("string")
        else if (booleans.has(key)) expect(typeof value, key).toBe("boolean")
        else if (integers.has(key)) expect(Number.isInteger(value), key).toBe(true)
        else expect(typeof value, key).toBe("number")
      }
      expect(result.detection_metadata.model_features).toStrictEqual(result.features)
      expect(result.features.transaction_day).toBeLessThan(7)
    }
  })

  it("look like the Python detector's messages on the wire", () => {
    const results = detections(6, 2000)
    const wires = results.map(pythonJson)
    expect(share(wires, (wire) => /"location_country": \d+\.0, "location_state": \d+\.0/.test(wire))).toBeGreaterThan(
      0.8
    )
    expect(share(results, (result) => result.transaction.device_info === "unknown")).toBeGreaterThan(0.4)
    for (const result of results) {
      expect(result.transaction.timestamp).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}$/)
      expect(result.transaction.transaction_id).toMatch(/^T\d{10}$/)
      expect(result.transaction.user_id).toMatch(/^U\d{5}$/)
    }
    expect(wires[0]).toMatch(/^\{"transaction": \{"transaction_id": "T0000000000", /)
  })

  it("give each message its own transaction while users come back", () => {
    const results = detections(7, 5000)
    expect(new Set(results.map((result) => result.transaction.transaction_id)).size).toBe(5000)
    expect(new Set(results.map((result) => result.transaction.user_id)).size).toBeLessThan(4000)
  })
})

describe("production plans", () => {
  const take = (options: Parameters<typeof plan>[0]): Array<PlannedMessage> => Array.from(plan(options))

  it("are the same for the same seed, byte for byte", () => {
    // Compared as text: deep equality walks Buffers byte by byte, which takes minutes.
    const fingerprints = (seed: number) =>
      take({ count: 3000, seed, malformedShare: 0.05, duplicateShare: 0.05 }).map((message) =>
        JSON.stringify([
          message.topic,
          message.key,
          message.value.toString("base64"),
          message.headers,
          message.expected
        ])
      )
    const first = fingerprints(9)
    expect(fingerprints(9)).toStrictEqual(first)
    expect(fingerprints(10)).not.toStrictEqual(first)
  })

  it("are lazy", () => {
    const iterator = plan({ count: 1_000_000_000 })[Symbol.iterator]()
    expect(iterator.next().done).toBe(false)
  })

  it("make exactly the requested count, with the topic mix, malformed and duplicate shares", () => {
    const counts = tally(plan({ count: 20_000, seed: 3, malformedShare: 0.02, duplicateShare: 0.03, alertShare: 0.1 }))
    expect(counts.records).toBe(20_000)
    expect(counts.duplicates).toBe(600)
    const malformed = Object.values(counts.malformed).reduce((sum, n) => sum + n, 0)
    expect(Math.abs(malformed / 20_000 - 0.02)).toBeLessThan(0.004)
    const valid = 20_000 - malformed - counts.duplicates
    const distinctDetections = Object.values(counts.detections).reduce((sum, n) => sum + n, 0)
    expect(distinctDetections / valid).toBeCloseTo(0.94, 1.5)
    expect(counts.metrics / valid).toBeCloseTo(0.03, 2)
    expect(counts.transactions / valid).toBeCloseTo(0.02, 2)
    expect(counts.audits / valid).toBeCloseTo(0.01, 2)
    expect(Math.abs(counts.alerts / distinctDetections - 0.1)).toBeLessThan(0.01)
  })

  it("re-send duplicates later, exactly as first sent", () => {
    const messages = take({ count: 10_000, seed: 4, duplicateShare: 0.05 })
    const firstSeen = new Map<string, number>()
    messages.forEach((message, index) => {
      if (message.expected.kind !== "detection") return
      const { transactionId, duplicate } = message.expected
      if (!duplicate) {
        expect(firstSeen.has(transactionId)).toBe(false)
        firstSeen.set(transactionId, index)
        return
      }
      const original = messages[firstSeen.get(transactionId)!]!
      expect(firstSeen.get(transactionId)).toBeLessThan(index)
      expect(message.key).toBe(original.key)
      expect(message.value.equals(original.value)).toBe(true)
      expect(message.headers).toStrictEqual(original.headers)
    })
    expect(tally(messages).duplicates).toBe(500)
    // A retry repeats a message once at most.
    const resent = messages.filter((message) => message.expected.kind === "detection" && message.expected.duplicate)
    expect(new Set(resent.map((message) => message.value.toString())).size).toBe(resent.length)
  })

  it("decode to what each message expects", () => {
    for (const message of take({ count: 3000, seed: 5, malformedShare: 0.1, duplicateShare: 0.02 })) {
      const result = decode(message.topic, message.value)
      const { expected } = message
      if (expected.kind === "malformed") {
        expect(Either.isLeft(result) && result.left.kind).toBe(expected.failure)
        continue
      }
      const decoded = Either.getOrThrowWith(result, (failure) => failure.message)
      switch (decoded._tag) {
        case "Detection":
          expect(expected).toMatchObject({
            kind: "detection",
            transactionId: decoded.value.transaction.transaction_id,
            userId: decoded.value.transaction.user_id,
            severity: decoded.value.severity
          })
          expect(message.key).toBe(decoded.value.transaction.user_id)
          break
        case "Metric":
          expect(expected).toStrictEqual({ kind: "metric", metricName: decoded.value.metric_name })
          expect(message.key).toBe(decoded.value.instance_id)
          break
        case "Transaction":
          expect(expected).toStrictEqual({ kind: "transaction", transactionId: decoded.value.transaction_id })
          expect(message.key).toBe(decoded.value.transaction_id)
          break
        case "Audit":
          expect(expected).toStrictEqual({ kind: "audit", entityId: decoded.value.entity_id })
          expect(message.key).toBe(decoded.value.entity_id)
          break
      }
    }
  })

  it("carry a correlation id on every message and a W3C traceparent on about the requested share", () => {
    const messages = take({ count: 5000, seed: 6, traceShare: 0.3 })
    for (const message of messages) {
      expect(message.headers["X-Correlation-ID"]).toMatch(
        /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/
      )
      const traceparent = message.headers["traceparent"]
      if (traceparent !== undefined) expect(traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/)
      if (message.expected.kind === "detection") {
        const body = JSON.parse(message.value.toString()) as DetectionResultWire
        if (body.correlation_id !== undefined) expect(message.headers["X-Correlation-ID"]).toBe(body.correlation_id)
      }
    }
    expect(Math.abs(share(messages, (message) => "traceparent" in message.headers) - 0.3)).toBeLessThan(0.03)
  })

  it("follow a custom topic mix", () => {
    const counts = tally(
      plan({
        count: 2000,
        seed: 8,
        malformedShare: 0,
        duplicateShare: 0,
        mix: { detection: 0, metric: 1, transaction: 1, audit: 0 }
      })
    )
    expect(counts.metrics + counts.transactions).toBe(2000)
    expect(counts.metrics).toBeGreaterThan(800)
    expect(counts.transactions).toBeGreaterThan(800)
  })
})
