import { Effect, Metric } from "effect"
import { describe, expect, it } from "vitest"
import { type Bucket, histogramQuantile, histograms, parseExposition } from "../../scripts/bench/quantiles.ts"
import { endToEndLatency, exposition } from "../../src/telemetry/Metrics.ts"

const buckets = (...pairs: ReadonlyArray<readonly [number, number]>): ReadonlyArray<Bucket> =>
  pairs.map(([le, count]) => ({ le, count }))

describe("histogramQuantile (as PromQL's histogram_quantile)", () => {
  const latency = buckets([0.1, 10], [0.5, 60], [1, 90], [Infinity, 100])

  it("interpolates linearly inside the bucket that holds the rank", () => {
    // rank 50 falls in (0.1, 0.5], which holds 50 observations, 40 of them up to the rank.
    expect(histogramQuantile(0.5, latency)).toBeCloseTo(0.1 + 0.4 * (40 / 50), 12)
    // rank 90 is the last observation of (0.5, 1].
    expect(histogramQuantile(0.9, latency)).toBeCloseTo(1, 12)
  })

  it("starts the first bucket at zero, or at its bound when that is not positive", () => {
    expect(histogramQuantile(0.05, latency)).toBeCloseTo(0.05, 12)
    expect(histogramQuantile(0.2, buckets([0, 5], [1, 10], [Infinity, 10]))).toBe(0)
  })

  it("answers the highest finite bound for a rank in the +Inf bucket", () => {
    expect(histogramQuantile(0.99, latency)).toBe(1)
  })

  it("sorts the buckets and holds dipping counts monotonic", () => {
    const shuffled = [latency[2]!, latency[0]!, latency[3]!, latency[1]!]
    expect(histogramQuantile(0.5, shuffled)).toBeCloseTo(0.42, 12)
    expect(histogramQuantile(0.5, buckets([0.1, 10], [0.5, 8], [Infinity, 20]))).toBeCloseTo(0.1, 12)
  })

  it("is NaN without observations or without a +Inf bucket, ±Inf outside [0, 1]", () => {
    expect(histogramQuantile(0.5, buckets([0.1, 0], [Infinity, 0]))).toBeNaN()
    expect(histogramQuantile(0.5, buckets([0.1, 3], [1, 5]))).toBeNaN()
    expect(histogramQuantile(0.5, buckets([Infinity, 5]))).toBeNaN()
    expect(histogramQuantile(-0.1, latency)).toBe(-Infinity)
    expect(histogramQuantile(1.1, latency)).toBe(Infinity)
  })
})

describe("parseExposition and histograms", () => {
  it("read Sentinel's own latency histogram, per path, and give its quantiles", () => {
    const observe = (path: string, seconds: number, times: number) =>
      Effect.runSync(
        Effect.forEach(Array.from({ length: times }), () =>
          Metric.update(Metric.tagged(endToEndLatency, "path", path), seconds))
      )
    observe("alerts", 0.09, 50)
    observe("alerts", 0.35, 40)
    observe("alerts", 0.6, 10)
    observe("analytics", 2.5, 4)
    const text = exposition()

    const series = histograms(parseExposition(text), "sentinel_end_to_end_latency_seconds")
    const alerts = series.find((s) => s.labels.path === "alerts")!
    const analytics = series.find((s) => s.labels.path === "analytics")!
    expect(alerts.count).toBe(100)
    expect(analytics.count).toBe(4)
    expect(alerts.sum).toBeCloseTo(50 * 0.09 + 40 * 0.35 + 10 * 0.6, 9)

    const cumulative = (le: number) => alerts.buckets.find((bucket) => bucket.le === le)?.count
    expect([0.075, 0.1, 0.3, 0.4, 0.5, 0.75, Infinity].map(cumulative)).toEqual([0, 50, 50, 90, 90, 100, 100])

    // 50 observations in (0.075, 0.1]; 40 in (0.3, 0.4]; 10 in (0.5, 0.75].
    expect(histogramQuantile(0.5, alerts.buckets)).toBeCloseTo(0.1, 12)
    expect(histogramQuantile(0.95, alerts.buckets)).toBeCloseTo(0.5 + 0.25 * (5 / 10), 12)
    expect(histogramQuantile(0.99, alerts.buckets)).toBeCloseTo(0.5 + 0.25 * (9 / 10), 12)
    // All four in (2, 3].
    expect(histogramQuantile(0.5, analytics.buckets)).toBeCloseTo(2.5, 12)
  })

  it("unescapes label values, skips comments and timestamps, and rejects what is not a sample", () => {
    const samples = parseExposition(
      [
        "# HELP x_total A counter",
        "# TYPE x_total counter",
        "x_total{reason=\"say \\\"hi\\\"\",path=\"a\\\\b\\nc\"} 3 1700000000000",
        "",
        "up 1",
        "g -Inf"
      ].join("\n")
    )
    expect(samples).toEqual([
      { name: "x_total", labels: { reason: "say \"hi\"", path: "a\\b\nc" }, value: 3 },
      { name: "up", labels: {}, value: 1 },
      { name: "g", labels: {}, value: -Infinity }
    ])
    expect(() => parseExposition("x_total{reason=unquoted} 1")).toThrow(/malformed labels/)
    expect(() => parseExposition("not a sample")).toThrow(/not a Prometheus sample/)
    expect(() => parseExposition("up one")).toThrow(/not a Prometheus sample value/)
  })
})
