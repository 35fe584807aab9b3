import { ConfigProvider, Effect, Exit } from "effect"
import { randomBytes } from "node:crypto"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import packageJson from "../../package.json" with { type: "json" }
import { plan, tally } from "../../src/produce/DetectorOutput.ts"
import { retryTransient } from "../../src/resilience/RetryPolicy.ts"
import type { KafkaRecord } from "../../src/source/KafkaRecord.ts"
import {
  correlationIds,
  formatTraceparent,
  linksTo,
  maxCorrelationIds,
  maxLinks,
  parseTraceparent
} from "../../src/telemetry/TraceContext.ts"
import * as Tracing from "../../src/telemetry/Tracing.ts"
import {
  type Deployment,
  drained,
  freshDeployment,
  produce,
  sentinel,
  startDaemon,
  stopDaemon,
  waitFor
} from "../support/daemon.ts"
import { createTopics, kafkaFor, stackEnv, uniqueName } from "../support/services.ts"
import {
  descendants,
  type JaegerSpan,
  type JaegerTrace,
  linksOf,
  linksWithAttributes,
  parentOf,
  tag,
  traceById,
  tracesOf
} from "./jaeger.ts"

const hex = (bytes: number) => randomBytes(bytes).toString("hex")

const record = (headers: Record<string, string>, offset = 0): KafkaRecord => ({
  topic: "t",
  partition: 0,
  offset: String(offset),
  timestamp: 0,
  key: null,
  headers,
  value: null
})

describe("W3C trace context", () => {
  it("parses a traceparent and formats it back", () => {
    const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    const span = parseTraceparent(traceparent)
    expect(span).toEqual({ traceId: "4bf92f3577b34da6a3ce929d0e0e4736", spanId: "00f067aa0ba902b7", sampled: true })
    expect(formatTraceparent(span!)).toBe(traceparent)
    expect(parseTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")?.sampled).toBe(false)
    // A later version may carry more fields.
    expect(parseTraceparent("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-ever")?.spanId)
      .toBe("00f067aa0ba902b7")
  })

  it("rejects what the W3C format forbids", () => {
    for (
      const bad of [
        undefined,
        null,
        "",
        "garbage",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", // version ff
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", // version 00 has four fields
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01", // zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", // zero span id
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", // upper case
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01" // short trace id
      ]
    ) expect(parseTraceparent(bad), String(bad)).toBeUndefined()
  })

  it("links each distinct producer span once, up to the cap, and counts the rest", () => {
    const spans = Array.from({ length: maxLinks + 7 }, () => `00-${hex(16)}-${hex(8)}-01`)
    const records = [
      ...spans.map((traceparent, i) => record({ traceparent }, i)),
      // The first span again, sampled differently: the same span, one more record.
      record({ traceparent: spans[0]!.replace(/-01$/, "-00") }, 1000),
      record({ traceparent: "not a traceparent" }, 1001),
      record({}, 1002)
    ]
    const { dropped, links } = linksTo(records, (r) => r.headers.traceparent, (first, count) => ({
      offset: first.offset,
      count
    }))
    expect(links).toHaveLength(maxLinks)
    expect(dropped).toBe(7)
    expect(links[0]!.span).toMatchObject(parseTraceparent(spans[0])!)
    expect(links[0]!.attributes).toEqual({ offset: "0", count: 2 })
    expect(links[1]!.attributes).toEqual({ offset: "1", count: 1 })
  })

  it("collects distinct correlation ids, decoded ones first, up to the cap", () => {
    const records = Array.from(
      { length: maxCorrelationIds + 3 },
      (_, i) => record({ "X-Correlation-ID": `header-${i % (maxCorrelationIds + 2)}` }, i)
    )
    const decoded = new Map([[records[0]!, "from-the-body"]])
    const { dropped, ids } = correlationIds(records, decoded)
    expect(ids).toHaveLength(maxCorrelationIds)
    expect(ids[0]).toBe("from-the-body")
    // header-0 comes again last, past the cap; so do two more.
    expect(ids).not.toContain("header-0")
    expect(dropped).toBe(3)
  })
})

/** Spans sent through `Tracing.layer` under `environment`, which stands in for the process's environment. */
const exportSpans = (serviceName: string, environment: Record<string, string>, endpoint?: string) =>
  Effect.runPromiseExit(
    Effect.void.pipe(
      Effect.withSpan("probe.child"),
      Effect.withSpan("probe.root", { root: true }),
      Effect.provide(Tracing.layer({ serviceName, endpoint })),
      Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(environment))))
    )
  )

describe("Tracing.layer on the stack's Jaeger", () => {
  const endpoint = () => stackEnv().OTEL_EXPORTER_OTLP_ENDPOINT!

  it("exports as the standard variables say: sampler, resource attributes, a traces endpoint alone", async () => {
    const name = uniqueName("sampling")
    const cases: ReadonlyArray<readonly [string, Record<string, string>, string | undefined]> = [
      ["alwaysOn", { OTEL_TRACES_SAMPLER: "always_on" }, endpoint()],
      ["alwaysOff", { OTEL_TRACES_SAMPLER: "always_off" }, endpoint()],
      ["ratioZero", { OTEL_TRACES_SAMPLER: "parentbased_traceidratio", OTEL_TRACES_SAMPLER_ARG: "0" }, endpoint()],
      ["ratioOne", { OTEL_TRACES_SAMPLER: "traceidratio", OTEL_TRACES_SAMPLER_ARG: "1" }, endpoint()],
      ["tracesEndpoint", { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${endpoint()}/v1/traces` }, undefined]
    ]
    // Resource attributes are read by OpenTelemetry's own detector, from the process's environment.
    process.env.OTEL_RESOURCE_ATTRIBUTES = "deployment.environment.name=ci,team=fraud%20ops"
    try {
      for (const [key, environment, base] of cases) {
        const exit = await exportSpans(`${name}-${key}`, environment, base)
        expect(Exit.isSuccess(exit), String(exit)).toBe(true)
      }
    } finally {
      delete process.env.OTEL_RESOURCE_ATTRIBUTES
    }
    // The layer flushed on close: what was exported is there now, what was not never will be.
    for (const exported of ["alwaysOn", "ratioOne", "tracesEndpoint"]) {
      const traces = await waitFor(`traces of ${exported}`, async () => {
        const found = await tracesOf(`${name}-${exported}`)
        return found.length > 0 ? found : undefined
      }, 30_000)
      expect(traces[0]!.spans.map((span) => span.operationName).sort()).toEqual(["probe.child", "probe.root"])
    }
    expect(await tracesOf(`${name}-alwaysOff`)).toEqual([])
    expect(await tracesOf(`${name}-ratioZero`)).toEqual([])

    const [trace] = await tracesOf(`${name}-alwaysOn`)
    const { tags } = trace!.processes[trace!.spans[0]!.processID]!
    expect(tags).toContainEqual(expect.objectContaining({ key: "deployment.environment.name", value: "ci" }))
    expect(tags).toContainEqual(expect.objectContaining({ key: "team", value: "fraud ops" }))
    expect(tags).toContainEqual(expect.objectContaining({ key: "service.version", value: packageJson.version }))
    expect(tags).toContainEqual(expect.objectContaining({ key: "host.name" }))
  })

  it("refuses a sampler or ratio it does not know as bad configuration", async () => {
    for (
      const [environment, variable] of [
        [{ OTEL_TRACES_SAMPLER: "sometimes" }, "OTEL_TRACES_SAMPLER"],
        [{ OTEL_TRACES_SAMPLER: "traceidratio", OTEL_TRACES_SAMPLER_ARG: "1.5" }, "OTEL_TRACES_SAMPLER_ARG"],
        [
          { OTEL_TRACES_SAMPLER: "parentbased_traceidratio", OTEL_TRACES_SAMPLER_ARG: "half" },
          "OTEL_TRACES_SAMPLER_ARG"
        ]
      ] as const
    ) {
      const exit = await exportSpans(uniqueName("bad"), environment, endpoint())
      expect(Exit.isFailure(exit)).toBe(true)
      expect(String(exit)).toContain(variable)
    }
    // The ratio means nothing to the other samplers and is not checked for them.
    expect(Exit.isSuccess(await exportSpans(uniqueName("ok"), { OTEL_TRACES_SAMPLER_ARG: "n/a" }, endpoint())))
      .toBe(true)
  })
})

describe("sentinel run traced in the stack's Jaeger", () => {
  const service = uniqueName("sentinel-traced")
  const producerService = uniqueName("sentinel-producer")
  let deployment: Deployment
  beforeAll(async () => {
    deployment = await freshDeployment({
      OTEL_SERVICE_NAME: service,
      SENTINEL_BATCH_MAX_RECORDS: "100",
      // Spans leave only when the daemon stops (or 2,048 wait): every span found was flushed on exit.
      OTEL_BSP_SCHEDULE_DELAY: "3600000",
      OTEL_BSP_MAX_EXPORT_BATCH_SIZE: "2048",
      // Room for every span of a slow run: none is dropped before the flush.
      OTEL_BSP_MAX_QUEUE_SIZE: "100000"
    })
    await sentinel(deployment.env, "migrate")
    await createTopics(deployment.topics)
  })
  afterAll(() => deployment.drop())

  it("makes each batch a trace linked to its producers, and each relay claim one linked to its batches", async () => {
    const detections = deployment.env.SENTINEL_TOPIC_DETECTIONS!
    // Records written here carry producer spans this test chose: two "detector" spans, 150 records each.
    const producers = [{ traceId: hex(16), spanId: hex(8) }, { traceId: hex(16), spanId: hex(8) }]
    const planned = [
      ...plan({
        count: 300,
        first: 1_000_000,
        seed: 3,
        malformedShare: 0,
        duplicateShare: 0,
        alertShare: 0.5,
        traceShare: 1,
        mix: { detection: 1, metric: 0, transaction: 0, audit: 0 },
        start: new Date()
      })
    ]
    const correlationOf = new Map<string, string>()
    const producer = kafkaFor().producer()
    await producer.connect()
    try {
      await producer.send({
        topic: detections,
        messages: planned.map((message, i) => {
          const span = producers[i < 150 ? 0 : 1]!
          const correlationId = message.headers["X-Correlation-ID"]!
          correlationOf.set(`${span.spanId}:${correlationId}`, correlationId)
          return {
            key: message.key,
            value: message.value,
            headers: { traceparent: formatTraceparent({ ...span, sampled: true }), "X-Correlation-ID": correlationId }
          }
        })
      })
    } finally {
      await producer.disconnect()
    }
    const ours = tally(planned)
    // And `sentinel produce` traces its own sends, with the same service conventions.
    const produced = await produce(
      { ...deployment.env, OTEL_SERVICE_NAME: producerService },
      "--count",
      "200",
      "--seed",
      "5",
      "--malformed",
      "0",
      "--duplicates",
      "0",
      "--alert-share",
      "0.5",
      "--start",
      new Date().toISOString()
    )
    const records = ours.records + produced.records
    const alerts = ours.alerts + produced.alerts

    const daemon = startDaemon(deployment.env)
    await waitFor("every record committed and every alert relayed", () => drained(deployment, alerts))
    expect(await stopDaemon(daemon), daemon.output()).toEqual({ code: 0, signal: null })

    const alertGroup = deployment.groupId
    const analyticsGroup = `${deployment.groupId}-analytics`
    const recordsIn = (spans: ReadonlyArray<JaegerSpan>, group: string) =>
      spans.filter((span) => tag(span, "messaging.consumer.group.name") === group)
        .reduce((sum, span) => sum + Number(tag(span, "messaging.batch.message_count")), 0)
    const { batchTraces, relayTraces } = await waitFor("every batch and relay claim in Jaeger", async () => {
      const batchTraces = await tracesOf(service, "sentinel.batch")
      const relayTraces = await tracesOf(service, "sentinel.outbox.relay")
      const batches = batchTraces.flatMap((trace) => trace.spans.filter((s) => s.operationName === "sentinel.batch"))
      const relayed = relayTraces.flatMap((trace) => trace.spans)
        .filter((span) => span.operationName === "sentinel.outbox.relay")
        .reduce((sum, span) => sum + Number(tag(span, "sentinel.outbox.rows")), 0)
      return recordsIn(batches, alertGroup) >= records && recordsIn(batches, analyticsGroup) >= records &&
          relayed >= alerts
        ? { batchTraces, relayTraces }
        : undefined
    }, 60_000)

    // Each batch is the root of a trace of its own, with its stages below it.
    const batchSpans = new Map<string, { trace: JaegerTrace; span: JaegerSpan }>()
    for (const trace of batchTraces) {
      const roots = trace.spans.filter((span) => parentOf(span) === undefined)
      expect(roots.map((span) => span.operationName)).toEqual(["sentinel.batch"])
      batchSpans.set(roots[0]!.spanID, { trace, span: roots[0]! })
    }
    const byPath = (group: string) =>
      [...batchSpans.values()].filter(({ span }) => tag(span, "messaging.consumer.group.name") === group)
    const alertBatches = byPath(alertGroup)
    const analyticsBatches = byPath(analyticsGroup)
    expect(alertBatches.length).toBeGreaterThan(0)
    expect(analyticsBatches.length).toBeGreaterThan(0)

    for (const { span, trace } of batchSpans.values()) {
      expect(tag(span, "span.kind")).toBe("consumer")
      expect(tag(span, "messaging.system.name")).toBe("kafka")
      expect(tag(span, "messaging.operation.type")).toBe("process")
      expect(tag(span, "messaging.operation.name")).toBe("process")
      // `sentinel produce` wrote to every topic; a batch names its destination when it has only one.
      const topics = String(tag(span, "sentinel.topics")).split(",")
      expect(deployment.topics).toEqual(expect.arrayContaining(topics))
      expect(tag(span, "messaging.destination.name")).toBe(topics.length === 1 ? topics[0] : undefined)
      const count = Number(tag(span, "messaging.batch.message_count"))
      expect(count).toBeGreaterThan(0)
      expect(count).toBeLessThanOrEqual(100)
      // topic/partition:first-last for each partition, and as many records as the ranges hold at most.
      const ranges = String(tag(span, "sentinel.offsets")).split(",")
      expect(String(tag(span, "sentinel.partitions")).split(",")).toHaveLength(ranges.length)
      let covered = 0
      for (const range of ranges) {
        const match = /^(.+)\/(\d):(\d+)-(\d+)$/.exec(range)
        expect(match, range).not.toBeNull()
        expect(topics).toContain(match![1])
        covered += Number(match![4]) - Number(match![3]) + 1
      }
      expect(covered).toBeGreaterThanOrEqual(count)

      const children = trace.spans.filter((child) => parentOf(child) === span.spanID)
      const decode = children.find((child) => child.operationName === "sentinel.decode")!
      expect(Number(tag(decode, "sentinel.decoded")) + Number(tag(decode, "sentinel.dead_letters"))).toBe(count)
      const commit = children.find((child) => child.operationName === "sentinel.commit")!
      expect(tag(commit, "messaging.operation.type")).toBe("settle")
      expect(tag(commit, "messaging.consumer.group.name")).toBe(tag(span, "messaging.consumer.group.name"))
    }

    // The alert path writes PostgreSQL in one transaction per batch that has something for it.
    const database = new URL(deployment.databaseUrl).pathname.slice(1)
    let alertRows = 0
    for (const { span, trace } of alertBatches) {
      const transactions = descendants(trace, span).filter((s) => s.operationName === "sentinel.postgres.transaction")
      // A batch with nothing for PostgreSQL (only analytics records) opens no transaction at all.
      expect(transactions.length).toBeLessThanOrEqual(1)
      if (transactions.length === 0) continue
      const [transaction] = transactions
      expect(tag(transaction!, "db.system.name")).toBe("postgresql")
      expect(tag(transaction!, "db.namespace")).toBe(database)
      expect(tag(transaction!, "db.operation.name")).toBe("INSERT")
      expect(tag(transaction!, "span.kind")).toBe("client")
      alertRows += Number(tag(transaction!, "sentinel.rows.fraud_alerts"))
      if (Number(tag(transaction!, "sentinel.alerts")) > 0) {
        expect(String(tag(transaction!, "db.query.summary"))).toMatch(/^INSERT fraud_alerts user_accounts/)
      }
    }
    expect(alertRows).toBe(alerts)

    // The analytics path writes ClickHouse, one span per INSERT.
    let analyticsRows = 0
    for (const { span, trace } of analyticsBatches) {
      for (const insert of descendants(trace, span).filter((s) => s.operationName === "sentinel.clickhouse.insert")) {
        expect(tag(insert, "db.system.name")).toBe("clickhouse")
        expect(tag(insert, "db.operation.name")).toBe("INSERT")
        expect(["transaction_records", "detection_results", "performance_metrics"]).toContain(
          tag(insert, "db.collection.name")
        )
        if (tag(insert, "db.collection.name") === "detection_results") {
          analyticsRows += Number(tag(insert, "sentinel.rows"))
        }
      }
    }
    const distinctDetections = (t: typeof ours) => Object.values(t.detections).reduce((sum, n) => sum + n, 0)
    expect(analyticsRows).toBe(distinctDetections(ours) + distinctDetections(produced))

    // The producers' spans are links of the batches that hold their records, with attributes (v3 API).
    for (const producerSpan of producers) {
      const linking = alertBatches.filter(({ span }) =>
        linksOf(span).some((link) => link.traceID === producerSpan.traceId && link.spanID === producerSpan.spanId)
      )
      expect(linking.length).toBeGreaterThan(0)
      const { span } = linking[0]!
      const link = (await linksWithAttributes(span.traceID)).get(span.spanID)!
        .find((l) => l.spanId === producerSpan.spanId)!
      expect(link.traceId).toBe(producerSpan.traceId)
      expect(link.attributes["messaging.destination.name"]).toBe(detections)
      expect(link.attributes["sentinel.records"]).toBeGreaterThan(0)
      const correlationId = String(link.attributes["messaging.message.conversation_id"])
      expect(correlationOf.get(`${producerSpan.spanId}:${correlationId}`)).toBe(correlationId)
      expect(String(tag(span, "sentinel.correlation_ids")).split(",")).toContain(correlationId)
      expect(tag(span, "sentinel.links.dropped")).toBe(0)
    }
    // `sentinel produce` made real spans: a batch links to one of them.
    const produceSpans = new Set(
      (await tracesOf(producerService, "sentinel.produce")).flatMap((trace) =>
        trace.spans.filter((span) => span.operationName === "sentinel.produce").map((span) => span.spanID)
      )
    )
    expect(produceSpans.size).toBeGreaterThan(0)
    expect([...batchSpans.values()].some(({ span }) => linksOf(span).some((link) => produceSpans.has(link.spanID))))
      .toBe(true)

    // Each relay claim is a trace of its own, linked to the alert batches that wrote its rows.
    for (const trace of relayTraces) {
      const relay = trace.spans.find((span) => span.operationName === "sentinel.outbox.relay")!
      expect(parentOf(relay)).toBeUndefined()
      expect(tag(relay, "sentinel.outbox.claim_id")).toMatch(/^[0-9a-f-]{36}$/)
      const links = linksOf(relay)
      expect(links.length).toBeGreaterThan(0)
      for (const link of links) {
        const batch = batchSpans.get(link.spanID)
        expect(batch, `relay link to ${link.spanID}`).toBeDefined()
        expect(batch!.span.traceID).toBe(link.traceID)
        expect(tag(batch!.span, "messaging.consumer.group.name")).toBe(alertGroup)
      }
      const inserts = descendants(trace, relay).filter((span) => span.operationName === "sentinel.clickhouse.insert")
      expect(inserts).toHaveLength(1)
      expect(tag(inserts[0]!, "db.collection.name")).toBe("alerts")
      expect(tag(inserts[0]!, "sentinel.rows")).toBe(tag(relay, "sentinel.outbox.rows"))
    }
    // A link leads to the batch's whole trace.
    const someLink = linksOf(relayTraces[0]!.spans.find((span) => span.operationName === "sentinel.outbox.relay")!)[0]!
    const linked = await traceById(someLink.traceID)
    expect(linked?.spans.map((span) => span.operationName)).toContain("sentinel.postgres.transaction")
  })
})

describe("retries in a trace", () => {
  it("records each retry as an event, with attempt, delay and error, of the span that waits", async () => {
    const service = uniqueName("retries")
    let attempts = 0
    const flaky = Effect.suspend(() =>
      ++attempts < 3 ? Effect.fail({ message: `refused ${attempts}` }) : Effect.succeed(attempts)
    )
    const policy = { initialDelay: "1 millis", maxDelay: "2 millis", maxElapsed: "1 minute", factor: 2 } as const
    await Effect.runPromise(
      flaky.pipe(
        retryTransient("postgres", () => true, policy),
        Effect.withSpan("waits", { root: true }),
        Effect.provide(Tracing.layer({ serviceName: service, endpoint: stackEnv().OTEL_EXPORTER_OTLP_ENDPOINT! }))
      )
    )
    const [trace] = await waitFor("the span in Jaeger", async () => {
      const traces = await tracesOf(service)
      return traces.length > 0 ? traces : undefined
    }, 30_000)
    // Log lines inside a span are events of it too; the retries are the events named so.
    const events = trace!.spans[0]!.logs.map(({ fields }) => Object.fromEntries(fields.map((f) => [f.key, f.value])))
      .filter((event) => event.event === "retry")
    expect(events).toEqual([1, 2].map((attempt) =>
      expect.objectContaining({
        event: "retry",
        "sentinel.sink": "postgres",
        "sentinel.retry.attempt": attempt,
        "sentinel.retry.delay_ms": expect.any(Number),
        "sentinel.retry.error": `refused ${attempt}`
      })
    ))
  })
})
