/**
 * The daemon's HTTP endpoint on a real run: /metrics parsed by a Prometheus text-format parser and
 * checked against what was sent; /healthz and /readyz, also through `sentinel health`; the breaker
 * controls through `sentinel breaker`; readiness while PostgreSQL is stopped and while a stage is
 * in a crash loop.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import parsePrometheus from "parse-prometheus-text-format"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { freePort } from "../../scripts/stack/process.ts"
import { type PrivatePostgres, privatePostgres } from "../fault/privatePostgres.ts"
import {
  alertCount,
  type Deployment,
  drained,
  freshDeployment,
  produce,
  sentinel,
  sentinelExit,
  sleep,
  startDaemon,
  stopDaemon,
  waitFor
} from "../support/daemon.ts"
import { projectRoot, uniqueName } from "../support/services.ts"

const get = async (port: number, route: string) => {
  const response = await fetch(`http://127.0.0.1:${port}${route}`)
  return { status: response.status, text: await response.text() }
}

const readiness = async (port: number) => {
  const { status, text } = await get(port, "/readyz")
  return { status, body: JSON.parse(text) as { ready: boolean; status: string; reasons: Array<string> } }
}

type Families = ReturnType<typeof parsePrometheus>

/**
 * A labelled histogram's `_count`. The parser validates the whole text, but folds a histogram's
 * series into one and drops their labels, so the counts are read from their own lines.
 */
const histogramCount = (text: string, name: string, labels: Record<string, string>) => {
  const wanted = Object.entries(labels).map(([key, value]) => `${key}="${value}"`)
  return text.split("\n")
    .filter((line) => line.startsWith(`${name}_count{`) && wanted.every((label) => line.includes(label)))
    .reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(" ") + 1)), 0)
}

/** Sum of a counter's or gauge's samples whose labels include `labels`. */
const total = (families: Families, name: string, labels: Record<string, string> = {}) =>
  (families.find((f) => f.name === name)?.metrics ?? [])
    .filter((sample) => Object.entries(labels).every(([key, value]) => sample.labels?.[key] === value))
    .reduce((sum, sample) => sum + Number(sample.value ?? sample.count), 0)

describe("the daemon's HTTP endpoint", () => {
  let deployment: Deployment
  let port: number
  beforeAll(async () => {
    port = await freePort()
    deployment = await freshDeployment({ SENTINEL_HTTP_PORT: String(port), SENTINEL_HEALTH_INTERVAL_MS: "500" })
    await sentinel(deployment.env, "migrate")
  })
  afterAll(() => deployment.drop())

  it(
    "serves metrics that count what was sent, health, readiness and the breaker controls",
    { timeout: 300_000 },
    async () => {
      const daemon = startDaemon(deployment.env)
      try {
        const tally = await produce(
          deployment.env,
          "--count",
          "4000",
          "--malformed",
          "0.05",
          "--duplicates",
          "0.02",
          "--seed",
          "51"
        )
        await waitFor("every record committed and every alert relayed", () => drained(deployment, tally.alerts))
        // One more probe round, so the gauges have seen the drained state.
        await sleep(1_500)
        const { status, text } = await get(port, "/metrics")
        expect(status).toBe(200)
        const families = parsePrometheus(text)
        const malformed = Object.values(tally.malformed).reduce((a, b) => a + b, 0)
        const detections = Object.values(tally.detections).reduce((a, b) => a + b, 0)
        // Counted as delivered: a rebalance on a loaded machine may deliver a record twice (the stores
        // keep it once, as the row counts below show).
        for (const path of ["alerts", "analytics"]) {
          const consumed = total(families, "sentinel_records_consumed_total", { path })
          const decoded = total(families, "sentinel_records_decoded_total", { path })
          expect(consumed, path).toBeGreaterThanOrEqual(tally.records)
          expect(consumed - decoded, path).toBeGreaterThanOrEqual(malformed)
          expect(histogramCount(text, "sentinel_end_to_end_latency_seconds", { path }), path).toBeGreaterThanOrEqual(
            tally.records
          )
          expect(total(families, "sentinel_batches_total", { path }), path).toBeGreaterThan(0)
        }
        for (const [reason, count] of Object.entries(tally.malformed)) {
          expect(total(families, "sentinel_dead_letters_total", { reason }), reason).toBeGreaterThanOrEqual(count)
        }
        const rows = (sink: string, table: string) =>
          total(families, "sentinel_sink_rows_written_total", { sink, table })
        expect(rows("postgres", "fraud_alerts")).toBe(tally.alerts)
        expect(rows("postgres", "outbox")).toBe(tally.alerts)
        expect(rows("postgres", "dead_letters")).toBe(malformed)
        expect(rows("clickhouse", "transaction_records")).toBe(detections + tally.transactions)
        expect(rows("clickhouse", "detection_results")).toBe(detections)
        expect(rows("clickhouse", "performance_metrics")).toBe(tally.metrics)
        expect(total(families, "sentinel_outbox_relayed_total")).toBe(tally.alerts)
        expect(total(families, "sentinel_outbox_backlog_rows")).toBe(0)
        expect(total(families, "sentinel_consumer_lag_records")).toBe(0)
        expect(total(families, "sentinel_circuit_breaker_state", { breaker: "postgres" })).toBe(0)
        expect(total(families, "sentinel_circuit_breaker_state", { breaker: "clickhouse" })).toBe(0)
        expect(histogramCount(text, "sentinel_sink_write_duration_seconds", { sink: "postgres" })).toBeGreaterThan(0)
        expect(total(families, "sentinel_ready")).toBe(1)
        expect(total(families, "process_resident_memory_bytes")).toBeGreaterThan(50e6)
        expect(families.find((f) => f.name === "sentinel_batch_duration_seconds")?.type).toBe("HISTOGRAM")

        const alive = await get(port, "/healthz")
        expect(alive.status).toBe(200)
        expect(JSON.parse(alive.text)).toMatchObject({ status: "alive" })
        const ready = await readiness(port)
        expect(ready.status, JSON.stringify(ready.body)).toBe(200)
        expect(ready.body).toMatchObject({
          ready: true,
          status: "ready",
          components: {
            kafka: { status: "up" },
            postgres: { status: "up" },
            clickhouse: { status: "up" },
            breakers: { postgres: { state: "closed" }, clickhouse: { state: "closed" } },
            fibers: { "alerts path": { state: "running" }, "analytics path": { state: "running" } }
          }
        })
        const health = await sentinelExit(deployment.env, "health")
        expect(health.code, health.stdout).toBe(0)
        expect(health.stdout).toMatch(/^ready/)

        // An operator pins the PostgreSQL breaker open: the alert path stops writing and the daemon is not ready.
        const opened = await sentinelExit(deployment.env, "breaker", "open", "postgres")
        expect(opened.code, opened.stdout).toBe(0)
        expect(JSON.parse(opened.stdout)).toEqual({ postgres: { state: "open" } })
        const blocked = await readiness(port)
        expect(blocked.status).toBe(503)
        expect(blocked.body.reasons).toContain("the postgres circuit breaker is open")
        expect((await sentinelExit(deployment.env, "health")).code).toBe(1)
        const before = await alertCount(deployment)
        const more = await produce(deployment.env, "--count", "1000", "--seed", "52", "--first", "4000")
        await sleep(3_000)
        expect(await alertCount(deployment)).toBe(before)
        const reset = await sentinelExit(deployment.env, "breaker", "reset", "postgres")
        expect(JSON.parse(reset.stdout)).toEqual({ postgres: { state: "closed" } })
        await waitFor("the held records to be written", () => drained(deployment, tally.alerts + more.alerts), 60_000)
        expect((await readiness(port)).status).toBe(200)
        expect((await sentinelExit(deployment.env, "breaker", "open", "nosuch")).code).toBe(1)
      } finally {
        expect(await stopDaemon(daemon), daemon.output()).toEqual({ code: 0, signal: null })
      }
      // Every line the daemon wrote is a JSON log line.
      for (const line of daemon.output().split("\n").filter((l) => l.trim() !== "")) {
        expect(() => JSON.parse(line), line).not.toThrow()
      }
    }
  )

  it("`sentinel health` says when no daemon answers", async () => {
    const answer = await sentinelExit({ ...deployment.env, SENTINEL_HTTP_PORT: String(await freePort()) }, "health")
    expect(answer.code).toBe(69)
  })
})

describe("readiness while PostgreSQL is stopped", () => {
  let postgres: PrivatePostgres
  let deployment: Deployment
  let port: number
  beforeAll(async () => {
    postgres = await privatePostgres()
    port = await freePort()
    deployment = await freshDeployment({
      DATABASE_URL: postgres.url,
      SENTINEL_HTTP_PORT: String(port),
      SENTINEL_HEALTH_INTERVAL_MS: "500"
    })
    await sentinel(deployment.env, "migrate")
  })
  afterAll(async () => {
    await postgres.remove()
    await deployment.drop()
  })

  it("turns not ready while the server is down and ready again after, by itself", async () => {
    const daemon = startDaemon(deployment.env)
    try {
      await waitFor("ready", async () => (await readiness(port)).status === 200 ? true : undefined)
      await postgres.stop()
      const down = await waitFor(
        "not ready",
        async () => {
          const answer = await readiness(port)
          return answer.status === 503 ? answer.body : undefined
        },
        30_000
      )
      expect(down.reasons).toContain("postgres is down")
      expect(down.ready).toBe(false)
      await postgres.start()
      await waitFor("ready again", async () => (await readiness(port)).status === 200 ? true : undefined, 30_000)
    } finally {
      expect(await stopDaemon(daemon), daemon.output()).toEqual({ code: 0, signal: null })
    }
  })
})

describe("readiness in a crash loop", () => {
  it("is not ready while a stage restarts, and past the limit the daemon exits non-zero", async () => {
    const control = path.join(projectRoot, ".sentinel", "data", `${uniqueName("faults")}.control`)
    fs.writeFileSync(control, "fail")
    const port = await freePort()
    const deployment = await freshDeployment({
      SENTINEL_HTTP_PORT: String(port),
      SENTINEL_HEALTH_INTERVAL_MS: "500",
      SENTINEL_CLICKHOUSE_FAULTS: control,
      // ClickHouse refuses every call: each attempt of the analytics path gives up after half a second.
      SENTINEL_RETRY_MAX_ELAPSED_MS: "500",
      SENTINEL_RESTART_BACKOFF_MS: "2000",
      SENTINEL_MAX_RESTARTS: "2"
    })
    try {
      await sentinel(deployment.env, "migrate")
      await produce(deployment.env, "--count", "200", "--seed", "53")
      const daemon = startDaemon(deployment.env)
      const looping = await waitFor("not ready: a stage restarting", async () => {
        const answer = await readiness(port)
        return answer.body.reasons.some((reason) => reason.startsWith("analytics path is restarting"))
          ? answer
          : undefined
      }, 60_000)
      expect(looping.status).toBe(503)
      const exit = await daemon.exited
      expect(exit.code, daemon.output()).toBe(1)
      expect(daemon.output()).toMatch(/(analytics path|outbox relay) keeps crashing/)
    } finally {
      fs.rmSync(control, { force: true })
      await deployment.drop()
    }
  })
})
