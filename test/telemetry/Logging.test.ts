import { Effect, Layer, LogLevel } from "effect"
import { Kafka } from "kafkajs"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { freePort } from "../../scripts/stack/process.ts"
import * as Logging from "../../src/telemetry/Logging.ts"
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
import { uniqueName } from "../support/services.ts"
import { type JaegerSpan, tag, traceById } from "./jaeger.ts"

interface LogLine {
  readonly timestamp: string
  readonly level: string
  readonly message: unknown
  readonly fiber_id: string
  readonly trace_id?: string
  readonly span_id?: string
  readonly annotations?: Record<string, unknown>
}

const parseLines = (output: string): ReadonlyArray<LogLine> =>
  output.split("\n").filter((line) => line !== "").map((line) => {
    try {
      return JSON.parse(line) as LogLine
    } catch {
      throw new Error(`not a JSON line: ${line}`)
    }
  })

describe("sentinel run logs", () => {
  const service = uniqueName("sentinel-logs")
  let deployment: Deployment
  beforeAll(async () => {
    deployment = await freshDeployment({
      OTEL_SERVICE_NAME: service,
      SENTINEL_LOG_LEVEL: "debug",
      SENTINEL_BATCH_MAX_RECORDS: "100"
    })
    await sentinel(deployment.env, "migrate")
  })
  afterAll(() => deployment.drop())

  it("are JSON lines on standard error, and those of a batch carry its trace and span ids", async () => {
    const tally = await produce(deployment.env, "--count", "400", "--malformed", "0.05", "--seed", "9")
    const daemon = startDaemon(deployment.env)
    let stdout = ""
    daemon.child.stdout!.on("data", (chunk: Buffer) => (stdout += chunk.toString()))
    await waitFor("every record committed and every alert relayed", () => drained(deployment, tally.alerts))
    expect(await stopDaemon(daemon), daemon.output()).toEqual({ code: 0, signal: null })

    // Nothing but log lines, all of them JSON with the same shape; standard output stays the commands' own.
    expect(stdout).toBe("")
    const lines = parseLines(daemon.output())
    for (const line of lines) {
      expect(Number.isNaN(Date.parse(line.timestamp)), JSON.stringify(line)).toBe(false)
      expect(["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"]).toContain(line.level)
      expect(line.fiber_id).toMatch(/^#\d+$/)
    }
    const messages = lines.map((line) => String(line.message))
    expect(messages).toContain("sentinel running")
    expect(messages).toContain("SIGTERM received: finishing the batches in flight")
    expect(messages).toContain("sentinel stopped")

    // A batch's debug line carries the batch's ids; that span is the batch's root in Jaeger.
    const durable = lines.filter((line) => line.message === "batch durable")
    expect(durable.map((line) => line.annotations?.path)).toEqual(expect.arrayContaining(["alerts", "analytics"]))
    expect(durable.reduce((sum, line) => sum + Number(line.annotations?.deadLetters), 0)).toBe(
      // Each path sees every malformed record once.
      2 * Object.values(tally.malformed).reduce((sum, n) => sum + n, 0)
    )
    for (const line of durable) {
      expect(line.trace_id).toMatch(/^[0-9a-f]{32}$/)
      expect(line.span_id).toMatch(/^[0-9a-f]{16}$/)
    }
    const withDeadLetters = durable.find((line) => Number(line.annotations?.deadLetters) > 0)!
    const trace = await waitFor("the batch's trace in Jaeger", () => traceById(withDeadLetters.trace_id!), 30_000)
    const batch = trace.spans.find((span) => span.spanID === withDeadLetters.span_id)!
    expect(batch.operationName).toBe("sentinel.batch")
    expect(trace.processes[batch.processID]!.serviceName).toBe(service)
    expect(tag(batch, "messaging.batch.message_count")).toBe(withDeadLetters.annotations?.records)
    const decode = trace.spans.find((span: JaegerSpan) => span.operationName === "sentinel.decode")!
    expect(tag(decode, "sentinel.dead_letters")).toBe(withDeadLetters.annotations?.deadLetters)
  })
})

describe("libraries' logs through the same logger", () => {
  /** What `effect` writes to standard error while running under the JSON logger at `level`. */
  const standardError = async (level: LogLevel.LogLevel, effect: Effect.Effect<void, unknown>) => {
    let written = ""
    const write = process.stderr.write
    process.stderr.write = ((chunk: string | Uint8Array) => {
      written += chunk.toString()
      return true
    }) as typeof process.stderr.write
    try {
      await Effect.runPromise(Effect.scoped(Effect.zipRight(Layer.build(Logging.layer(level)), effect)))
    } finally {
      process.stderr.write = write
    }
    return parseLines(written)
  }

  it("writes kafkajs's entries as JSON lines at their level, filtered by the daemon's level", async () => {
    const port = await freePort()
    const connect = Effect.promise(() =>
      new Kafka({
        clientId: "logging-test",
        brokers: [`127.0.0.1:${port}`],
        logCreator: Logging.kafkaLogCreator,
        retry: { retries: 0 }
      }).admin().connect().catch(() => undefined)
    )
    const lines = await standardError(LogLevel.Info, connect)
    const errors = lines.filter((line) => line.annotations?.logger === "kafkajs")
    expect(errors.length).toBeGreaterThan(0)
    expect(errors[0]).toMatchObject({ level: "ERROR", annotations: { namespace: expect.any(String) } })
    expect(String(errors[0]!.message)).toMatch(/connect|ECONNREFUSED/i)
    // Below the daemon's level, kafkajs's errors are not written either.
    expect(await standardError(LogLevel.Fatal, connect)).toEqual([])
  })

  it("writes OpenTelemetry's complaints (a collector that is down) as JSON lines", async () => {
    const port = await freePort()
    process.env.OTEL_BSP_SCHEDULE_DELAY = "50"
    try {
      const lines = await standardError(
        LogLevel.Info,
        Effect.void.pipe(
          Effect.withSpan("nobody.listens"),
          Effect.zipRight(Effect.sleep("2 seconds")),
          Effect.provide(Tracing.layer({ serviceName: "logging-test", endpoint: `http://127.0.0.1:${port}` }))
        )
      )
      const complaints = lines.filter((line) => line.annotations?.logger === "opentelemetry")
      expect(complaints.length).toBeGreaterThan(0)
      expect(complaints[0]!.level).toBe("ERROR")
    } finally {
      delete process.env.OTEL_BSP_SCHEDULE_DELAY
    }
  })
})
