import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import * as Tracing from "../../src/telemetry/Tracing.ts"
import { stackEnv, uniqueName } from "../support/services.ts"

interface JaegerTrace {
  readonly traceID: string
  readonly spans: ReadonlyArray<
    { readonly operationName: string; readonly tags: ReadonlyArray<{ key: string; value: unknown }> }
  >
}

const findTraces = async (queryUrl: string, service: string): Promise<ReadonlyArray<JaegerTrace>> => {
  const deadline = Date.now() + 30_000
  while (Date.now() < deadline) {
    const response = await fetch(`${queryUrl}/api/traces?service=${encodeURIComponent(service)}&limit=20`)
    if (response.ok) {
      const body = (await response.json()) as { data: ReadonlyArray<JaegerTrace> | null }
      if (body.data && body.data.length > 0) return body.data
    }
    await new Promise((resolve) => setTimeout(resolve, 500))
  }
  return []
}

describe("Jaeger (local stack) receiving OTLP", () => {
  it("shows a span exported from this process through its query API", async () => {
    const env = stackEnv()
    const serviceName = uniqueName("sentinel-smoke")
    await Effect.runPromise(
      Effect.void.pipe(
        Effect.withSpan("smoke.child", { attributes: { "smoke.answer": 42 } }),
        Effect.withSpan("smoke.root"),
        Effect.provide(Tracing.layer({ serviceName, endpoint: env.OTEL_EXPORTER_OTLP_ENDPOINT }))
      )
    )
    const traces = await findTraces(env.JAEGER_QUERY_URL!, serviceName)
    expect(traces).toHaveLength(1)
    const names = traces[0]!.spans.map((s) => s.operationName).sort()
    expect(names).toEqual(["smoke.child", "smoke.root"])
    const child = traces[0]!.spans.find((s) => s.operationName === "smoke.child")!
    expect(child.tags).toContainEqual(expect.objectContaining({ key: "smoke.answer", value: 42 }))
  })
})
