import { describe, expect, it } from "@effect/vitest"
import { Either, Schema } from "effect"
import { decode, type Decoded, type DecodeFailure, type TopicKind } from "../../src/contract/Decode.ts"
import { DetectionResult, readDetectionResult } from "../../src/contract/DetectionResult.ts"
import {
  auditEvent,
  detectionResult,
  malformed,
  performanceMetric,
  pythonJson,
  seededRng,
  transactionRecord
} from "../../src/produce/DetectorOutput.ts"

const normalTimestamp = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}$/

const decoded = (kind: TopicKind, message: unknown): Decoded => {
  const result = decode(kind, Buffer.from(JSON.stringify(message)))
  if (Either.isLeft(result)) throw new Error(`expected ${kind} to decode, got: ${result.left.message}`)
  return result.right
}

const detection = (message: unknown): DetectionResult => {
  const result = decoded("detection", message)
  if (result._tag !== "Detection") throw new Error(`expected a Detection, got ${result._tag}`)
  return result.value
}

const failure = (kind: TopicKind, value: Buffer | null): DecodeFailure => {
  const result = decode(kind, value)
  if (Either.isRight(result)) throw new Error(`expected ${kind} to fail, got ${JSON.stringify(result.right)}`)
  return result.left
}

// Exactly as the Python detector writes it (json.dumps defaults), in ML mode.
const mlResult = `{"transaction": {"transaction_id": "T0000048213", "user_id": "U01234", \
"timestamp": "2026-04-16T14:22:07.418233", "amount": 1250.0, "merchant_category": "electronics", \
"payment_method": "credit_card", "device_info": "unknown", "location_country": 150.0, "location_state": 12.5}, \
"is_fraud": true, "fraud_score": 0.83, "severity": "HIGH", "ml_prediction": 0.87, \
"business_rules_triggered": ["high_amount_transaction", "amount_deviation_high"], "processing_time_ms": 14, \
"explanation": {"amount_vs_avg_ratio": 5.2, "velocity_score": 0.3, "is_high_amount": true, "is_unusual_hour": false, \
"is_rapid_transaction": false, "daily_transaction_count": 3}, \
"features": {"user_id": "U01234", "transaction_id": "T0000048213", "amount": 1250.0, "amount_vs_avg_ratio": 5.2, \
"daily_amount_total": 1490.5, "time_since_last_transaction": 5400.0, "amount_vs_last_ratio": 3.1, \
"velocity_score": 0.3, "fraud_score": 0.83, "transaction_hour": 14, "transaction_day": 3, \
"daily_transaction_count": 3, "is_high_amount": true, "is_unusual_hour": false, "is_rapid_transaction": false, \
"is_fraud_alert": true}, \
"detection_metadata": {"ml_model_version": "fraud_model_v2.3.1", "ml_prediction": 0.87, "ml_confidence": 0.87, \
"business_rules_score": null, "features_used": ["amount", "amount_vs_avg_ratio"], \
"model_features": {"user_id": "U01234", "amount": 1250.0, "is_high_amount": true}}}`

// The tests edit messages into shapes the contract forbids, so edited JSON is deliberately untyped.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type LooseJson = { [key: string]: any }

const example = (): LooseJson => JSON.parse(mlResult)

describe("decode: fraud-detection-results", () => {
  it("decodes the detector's message, keeping its field names", () => {
    const result = detection(example())
    expect(result.transaction).toStrictEqual({
      transaction_id: "T0000048213",
      user_id: "U01234",
      timestamp: "2026-04-16T14:22:07.418233",
      amount: 1250,
      merchant_category: "electronics",
      payment_method: "credit_card",
      device_info: "unknown",
      location_country: "150",
      location_state: "12.5"
    })
    expect(result.severity).toBe("HIGH")
    expect(result.ml_prediction).toBe(0.87)
    expect(result.features.transaction_hour).toBe(14)
    expect(result.features.is_fraud_alert).toBe(true)
    expect(result.detection_metadata.business_rules_score).toBeNull()
    expect(result).not.toHaveProperty("correlation_id")
  })

  it("decodes a rules-only result: ML fields null", () => {
    const message = example()
    message.ml_prediction = null
    message.detection_metadata = {
      ...message.detection_metadata,
      ml_model_version: null,
      ml_prediction: null,
      ml_confidence: null,
      business_rules_score: 0.83
    }
    const result = detection(message)
    expect(result.ml_prediction).toBeNull()
    expect(result.detection_metadata).toMatchObject({
      ml_model_version: null,
      ml_prediction: null,
      ml_confidence: null,
      business_rules_score: 0.83
    })
  })

  it("reads an absent nullable field as null", () => {
    const message = example()
    delete message.ml_prediction
    for (const key of ["ml_model_version", "ml_prediction", "ml_confidence", "business_rules_score"]) {
      delete message.detection_metadata[key]
    }
    const result = detection(message)
    expect(result.ml_prediction).toBeNull()
    expect(result.detection_metadata).toMatchObject({
      ml_model_version: null,
      ml_prediction: null,
      ml_confidence: null,
      business_rules_score: null
    })
  })

  it("accepts string locations as they are and numbers in their shortest form", () => {
    const message = example()
    message.transaction.location_country = "US"
    message.transaction.location_state = 7
    expect(detection(message).transaction).toMatchObject({ location_country: "US", location_state: "7" })
  })

  it("ignores unknown fields at every level and keeps unknown feature keys", () => {
    const message = example()
    message.detector_version = "3.1"
    message.transaction.channel = "web"
    message.explanation.note = "x"
    message.detection_metadata.shadow_model = { version: "v3" }
    message.features.new_feature = 0.5
    const result = detection(message)
    expect(result).not.toHaveProperty("detector_version")
    expect(result.transaction).not.toHaveProperty("channel")
    expect(result.explanation).not.toHaveProperty("note")
    expect(result.detection_metadata).not.toHaveProperty("shadow_model")
    expect(result.features.new_feature).toBe(0.5)
  })

  it("keeps a correlation id and reads a null one as absent", () => {
    expect(detection({ ...example(), correlation_id: "abc-123" }).correlation_id).toBe("abc-123")
    expect(detection({ ...example(), correlation_id: null })).not.toHaveProperty("correlation_id")
  })

  it("accepts a fractional processing time and any finite amount", () => {
    const message = example()
    message.processing_time_ms = 12.75
    message.transaction.amount = -40.5
    expect(detection(message)).toMatchObject({ processing_time_ms: 12.75, transaction: { amount: -40.5 } })
  })

  it.each([
    ["2026-04-16T14:22:07.418233", "2026-04-16T14:22:07.418233"],
    ["2026-04-16 14:22:07.418233", "2026-04-16T14:22:07.418233"],
    ["2026-04-16T14:22:07", "2026-04-16T14:22:07.000000"],
    ["2026-04-16T14:22:07.4", "2026-04-16T14:22:07.400000"],
    ["2026-04-16T14:22:07.123456789", "2026-04-16T14:22:07.123456"],
    ["2026-04-16T14:22:07.418233Z", "2026-04-16T14:22:07.418233"],
    ["2026-04-16T14:22:07+00:00", "2026-04-16T14:22:07.000000"],
    ["2026-04-16T01:22:07.5+02:00", "2026-04-15T23:22:07.500000"],
    ["2026-12-31T23:30:00-01:00", "2027-01-01T00:30:00.000000"],
    ["2026-04-16T14:22:07+0530", "2026-04-16T08:52:07.000000"],
    ["2024-02-29T00:00:00", "2024-02-29T00:00:00.000000"]
  ])("normalises the timestamp %s to %s", (sent, normal) => {
    const message = example()
    message.transaction.timestamp = sent
    expect(detection(message).transaction.timestamp).toBe(normal)
  })
})

describe("decode: rejections", () => {
  it("says a record without a value is empty", () => {
    expect(failure("detection", null).kind).toBe("empty")
    expect(failure("metric", Buffer.alloc(0)).kind).toBe("empty")
  })

  it("says where a value stops being UTF-8", () => {
    const bytes = Buffer.concat([Buffer.from("{\"a\": \""), Buffer.from([0xe9]), Buffer.from("t\"}")])
    const { kind, message } = failure("detection", bytes)
    expect(kind).toBe("not_utf8")
    expect(message).toBe("the value is not valid UTF-8: bytes e9 74 at offset 7")
    const cutOff = failure("detection", Buffer.from([0x7b, 0x22, 0xe2, 0x82]))
    expect(cutOff.message).toBe("the value is not valid UTF-8: a multi-byte sequence cut off at the end (offset 2)")
  })

  it.each(["hello", "{\"transaction\": {", "{'severity': 'LOW'}", "NaN"])("says %j is not JSON", (text) => {
    expect(failure("detection", Buffer.from(text)).kind).toBe("not_json")
  })

  it.each(["null", "[]", "\"ok\"", "42"])("says %s is not a JSON object", (text) => {
    const { kind, message } = failure("detection", Buffer.from(text))
    expect(kind).toBe("invalid")
    expect(message).toMatch(/^expected a JSON object/)
  })

  const edits: ReadonlyArray<readonly [string, (message: LooseJson) => void, RegExp]> = [
    ["severity", (m) => (m.severity = "SEVERE"), /^severity: .*"MEDIUM".*actual "SEVERE"/],
    ["lowercase severity", (m) => (m.severity = "high"), /^severity: /],
    ["fraud_score as text", (m) => (m.fraud_score = "high"), /^fraud_score: Expected number, actual "high"/],
    ["fraud_score above 1", (m) => (m.fraud_score = 1.5), /^fraud_score: .*between 0 and 1/],
    ["fraud_score infinite", (m) => (m.fraud_score = 1e999), /^fraud_score: /],
    ["missing transaction", (m) => delete m.transaction, /^transaction: is missing/],
    ["missing user_id", (m) => delete m.transaction.user_id, /^transaction\.user_id: is missing/],
    ["empty transaction_id", (m) => (m.transaction.transaction_id = ""), /^transaction\.transaction_id: /],
    ["is_fraud as text", (m) => (m.is_fraud = "true"), /^is_fraud: Expected boolean/],
    ["a rule that is not a string", (m) => (m.business_rules_triggered = ["x", 3]), /^business_rules_triggered\[1\]: /],
    ["negative processing time", (m) => (m.processing_time_ms = -1), /^processing_time_ms: /],
    [
      "fractional daily count",
      (m) => (m.explanation.daily_transaction_count = 2.5),
      /^explanation\.daily_transaction_count: /
    ],
    ["features not an object", (m) => (m.features = null), /^features: /],
    [
      "feature that is an array",
      (m) => (m.features.amount = [1]),
      /^features\.amount: Expected string \| number \| boolean/
    ],
    [
      "missing model_features",
      (m) => delete m.detection_metadata.model_features,
      /^detection_metadata\.model_features: is missing/
    ],
    ["ml_prediction as text", (m) => (m.ml_prediction = "0.8"), /^ml_prediction: /],
    ["location as a list", (m) => (m.transaction.location_country = [150]), /^transaction\.location_country: /],
    ["correlation_id as a number", (m) => (m.correlation_id = 7), /^correlation_id: /]
  ]

  it.each(edits)("rejects %s, naming the field", (_, edit, reason) => {
    const message = example()
    edit(message)
    const { kind, message: why } = failure("detection", Buffer.from(JSON.stringify(message)))
    expect(kind).toBe("invalid")
    expect(why).toMatch(reason)
    expect(why).not.toContain("\n")
    expect(why.length).toBeLessThanOrEqual(500)
  })

  it.each([
    ["2026-13-45T10:00:00", "month 13 is not 01-12"],
    ["2026-04-31T10:00:00", "day 31 does not exist in 2026-04"],
    ["2026-02-29T10:00:00.000000", "day 29 does not exist in 2026-02"],
    ["2026-04-16T24:00:00", "hour 24 is not 00-23"],
    ["2026-04-16T14:60:00", "minute 60 is not 00-59"],
    ["2026-04-16T14:22:60", "second 60 is not 00-59"],
    ["1850-04-16T14:22:07", "year 1850 is outside 1900-2299"],
    ["2026-04-16T14:22:07+25:00", "offset +25:00 is not a UTC offset"],
    ["16/04/2026 14:22:07", "expected an ISO-8601 date-time"],
    ["2026-04-16", "expected an ISO-8601 date-time"],
    ["", "expected an ISO-8601 date-time"]
  ])("rejects the timestamp %j: %s", (sent, reason) => {
    const message = example()
    message.transaction.timestamp = sent
    const { kind, message: why } = failure("detection", Buffer.from(JSON.stringify(message)))
    expect(kind).toBe("invalid")
    expect(why).toMatch(/^transaction\.timestamp: /)
    expect(why).toContain(reason)
  })
})

describe("decode: the other topics", () => {
  const metric = {
    timestamp: "2026-04-16T14:22:07.418233",
    metric_name: "fraud_detection_processing_time",
    metric_value: 12.5,
    component: "fraud_detector",
    instance_id: "fraud-detector-1",
    labels: { ml_enabled: "True" }
  }

  it("decodes a performance metric", () => {
    expect(decoded("metric", metric)).toStrictEqual({ _tag: "Metric", value: metric })
  })

  it("reads missing or null labels as none", () => {
    const { labels: _, ...withoutLabels } = metric
    expect(decoded("metric", withoutLabels)).toMatchObject({ value: { labels: {} } })
    expect(decoded("metric", { ...metric, labels: null })).toMatchObject({ value: { labels: {} } })
  })

  it("rejects a label that is not a string, naming it", () => {
    const { message } = failure("metric", Buffer.from(JSON.stringify({ ...metric, labels: { ml_enabled: true } })))
    expect(message).toBe("labels.ml_enabled: Expected string, actual true")
  })

  it("decodes a flat transaction record with a numeric location and a spaced timestamp", () => {
    const record = {
      transaction_id: "T0000000001",
      user_id: "U00001",
      timestamp: "2026-04-16 14:22:07",
      amount: 10,
      merchant_category: "grocery",
      payment_method: "debit_card",
      device_info: "unknown",
      location_country: 840.0,
      location_state: "CA",
      is_fraud: false,
      fraud_score: 0.1,
      processing_time_ms: 3,
      unknown_field: 1
    }
    expect(decoded("transaction", record)).toStrictEqual({
      _tag: "Transaction",
      value: {
        ...Object.fromEntries(Object.entries(record).filter(([key]) => key !== "unknown_field")),
        timestamp: "2026-04-16T14:22:07.000000",
        location_country: "840"
      }
    })
  })

  it("decodes audit events with and without their optional fields", () => {
    const required = { event_type: "USER_STATUS_CHANGED", entity_type: "user", entity_id: "U00001", action: "BLOCK" }
    expect(decoded("audit", required)).toStrictEqual({ _tag: "Audit", value: required })
    expect(decoded("audit", { ...required, actor_id: null, details: null, timestamp: null })).toStrictEqual({
      _tag: "Audit",
      value: required
    })
    expect(
      decoded("audit", {
        ...required,
        actor_id: "analyst_01",
        details: { reason: ["a"] },
        timestamp: "2026-04-16T14:22:07Z"
      })
    ).toStrictEqual({
      _tag: "Audit",
      value: {
        ...required,
        actor_id: "analyst_01",
        details: { reason: ["a"] },
        timestamp: "2026-04-16T14:22:07.000000"
      }
    })
  })

  it("rejects an audit event without an action, or with details that are not an object", () => {
    const event = { event_type: "X", entity_type: "user", entity_id: "U1", action: "" }
    expect(failure("audit", Buffer.from(JSON.stringify(event))).message).toMatch(/^action: /)
    const withList = { ...event, action: "BLOCK", details: [] }
    expect(failure("audit", Buffer.from(JSON.stringify(withList))).message).toMatch(/^details: Expected a JSON object/)
  })
})

describe("decode: everything the generator makes", () => {
  const seeds = [1, 2, 3, 42]

  // Failures are collected and compared once: an assertion per message would cost more than the decoding.
  it.each(seeds)("decodes every generated message (seed %i)", (seed) => {
    const rng = seededRng(seed)
    const failures: Array<string> = []
    for (let n = 0; n < 1500; n++) {
      for (
        const [kind, message] of [
          ["detection", detectionResult(rng, n)],
          ["metric", performanceMetric(rng, n)],
          ["transaction", transactionRecord(rng, n)],
          ["audit", auditEvent(rng, n)]
        ] as const
      ) {
        const result = decode(kind, Buffer.from(pythonJson(message)))
        if (Either.isLeft(result)) failures.push(`${kind} ${n}: ${result.left.message}`)
        else if (result.right._tag === "Detection" && !normalTimestamp.test(result.right.value.transaction.timestamp)) {
          failures.push(`${kind} ${n}: timestamp ${result.right.value.transaction.timestamp}`)
        }
      }
    }
    expect(failures).toStrictEqual([])
  })

  it.each(seeds)("rejects every malformed payload with its expected kind (seed %i)", (seed) => {
    const rng = seededRng(seed)
    const mismatches: Array<string> = []
    for (let n = 0; n < 1500; n++) {
      const payload = malformed(rng, n)
      const { kind, message } = failure("detection", payload.bytes)
      const namesField = payload.field === undefined || message.startsWith(`${payload.field}: `)
      if (kind !== payload.expectedKind || !namesField) {
        mismatches.push(`expected ${payload.expectedKind} ${payload.field ?? ""}, got ${kind}: ${message}`)
      }
    }
    expect(mismatches).toStrictEqual([])
  })
})

describe("the hot path agrees with the schema", () => {
  const decodeWithSchema = Schema.decodeUnknownEither(DetectionResult)

  const agree = (json: unknown) => {
    const quick = readDetectionResult(json)
    const reference = decodeWithSchema(json)
    if (Either.isRight(reference)) expect(quick).toStrictEqual(reference.right)
    else expect(quick).toBeUndefined()
  }

  it("gives the schema's result for generated messages", () => {
    const rng = seededRng(7)
    for (let n = 0; n < 1000; n++) agree(JSON.parse(pythonJson(detectionResult(rng, n))))
  })

  // Every field of a few messages, replaced by each of these in turn (or removed): the hot path must
  // accept exactly what the schema accepts and give the same result.
  const replacements: ReadonlyArray<unknown> = [
    null,
    "",
    "x",
    "MEDIUM",
    0,
    -1,
    0.5,
    1.5,
    3.7,
    2 ** 53,
    Infinity,
    true,
    [],
    ["a"],
    {},
    { a: 1 },
    "2026-04-16T14:22:07",
    "2026-04-16T14:22:07+01:00",
    "2026-02-30T00:00:00.000000"
  ]

  const pathsOf = (value: unknown, prefix: ReadonlyArray<string>): Array<ReadonlyArray<string>> =>
    typeof value === "object" && value !== null
      ? Object.entries(value).flatMap(([key, field]) => [[...prefix, key], ...pathsOf(field, [...prefix, key])])
      : []

  const removed = Symbol("removed")

  const edited = (message: unknown, path: ReadonlyArray<string>, replacement: unknown | typeof removed) => {
    const copy = structuredClone(message) as LooseJson
    const parent = path.slice(0, -1).reduce((node, key) => node[key], copy)
    const key = path[path.length - 1]!
    if (replacement === removed) delete parent[key]
    else parent[key] = replacement
    return copy
  }

  it("accepts and rejects exactly what the schema does, field by field", () => {
    const rng = seededRng(11)
    const messages = [
      example(),
      ...Array.from({ length: 4 }, (_, n) => JSON.parse(pythonJson(detectionResult(rng, n, { rulesOnlyShare: 0.5 }))))
    ]
    for (const message of messages) {
      for (const path of pathsOf(message, [])) {
        for (const replacement of [removed, ...replacements]) agree(edited(message, path, replacement))
      }
    }
  })
})
