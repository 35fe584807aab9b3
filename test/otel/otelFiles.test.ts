/**
 * The operator files in otel/ (Compose, Collector, Prometheus, Grafana): every one parses, they agree
 * with one another (services, ports, data source uids, mounted paths), and every PromQL expression
 * in them asks only for metrics and labels that Sentinel's `/metrics` serves.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { parse } from "yaml"

export interface DocumentedMetric {
  readonly name: string
  readonly type: "counter" | "gauge" | "histogram"
  readonly labels: ReadonlyArray<string>
}

/**
 * What `GET /metrics` serves, as documented for operators (README, src/telemetry/Metrics.ts): the
 * list the dashboard is checked against. To be compared with a live daemon's exposition, so that a
 * renamed or dropped metric fails here rather than as an empty panel.
 */
export const documentedMetrics: ReadonlyArray<DocumentedMetric> = [
  { name: "sentinel_records_consumed_total", type: "counter", labels: ["path", "topic"] },
  { name: "sentinel_records_decoded_total", type: "counter", labels: ["path", "topic"] },
  { name: "sentinel_dead_letters_total", type: "counter", labels: ["reason"] },
  { name: "sentinel_batches_total", type: "counter", labels: ["path"] },
  { name: "sentinel_batch_size_records", type: "histogram", labels: ["path"] },
  { name: "sentinel_batch_duration_seconds", type: "histogram", labels: ["path"] },
  { name: "sentinel_end_to_end_latency_seconds", type: "histogram", labels: ["path"] },
  { name: "sentinel_sink_write_duration_seconds", type: "histogram", labels: ["sink"] },
  { name: "sentinel_sink_rows_written_total", type: "counter", labels: ["sink", "table"] },
  { name: "sentinel_outbox_backlog_rows", type: "gauge", labels: [] },
  { name: "sentinel_outbox_oldest_age_seconds", type: "gauge", labels: [] },
  { name: "sentinel_outbox_relayed_total", type: "counter", labels: [] },
  { name: "sentinel_circuit_breaker_state", type: "gauge", labels: ["breaker"] },
  { name: "sentinel_circuit_breaker_transitions_total", type: "counter", labels: ["breaker", "from", "to"] },
  { name: "sentinel_retries_total", type: "counter", labels: ["sink"] },
  { name: "sentinel_consumer_lag_records", type: "gauge", labels: ["group", "topic", "partition"] },
  { name: "sentinel_fiber_restarts_total", type: "counter", labels: ["fiber"] },
  { name: "sentinel_ready", type: "gauge", labels: [] },
  { name: "process_resident_memory_bytes", type: "gauge", labels: [] },
  { name: "process_cpu_seconds_total", type: "counter", labels: [] },
  { name: "process_start_time_seconds", type: "gauge", labels: [] },
  { name: "nodejs_heap_used_bytes", type: "gauge", labels: [] }
]

/** The series a metric appears as in the Prometheus text format. */
export const seriesOf = (metric: DocumentedMetric): ReadonlyArray<string> =>
  metric.type === "histogram"
    ? [`${metric.name}_bucket`, `${metric.name}_sum`, `${metric.name}_count`]
    : [metric.name]

/** Labels Prometheus attaches to every scraped series. */
const targetLabels = ["job", "instance"]

const metricOfSeries = new Map(documentedMetrics.flatMap((metric) => seriesOf(metric).map((s) => [s, metric])))

const otelDir = path.join(import.meta.dirname, "..", "..", "otel")

const read = (file: string) => fs.readFileSync(path.join(otelDir, file), "utf8")
const yamlFile = (file: string): unknown => parse(read(file))
const dashboard = JSON.parse(read("grafana/dashboards/sentinel.json")) as Dashboard
const compose = yamlFile("compose.yaml") as { services: Record<string, ComposeService> }

interface ComposeService {
  readonly environment?: Record<string, string | number>
  readonly volumes?: ReadonlyArray<string>
  readonly ports?: ReadonlyArray<string>
  readonly depends_on?: Record<string, { condition: string }>
  readonly healthcheck?: unknown
  readonly profiles?: ReadonlyArray<string>
}

interface DataSourceRef {
  readonly type?: string
  readonly uid?: string
}

interface Target {
  readonly refId: string
  readonly datasource?: DataSourceRef
  readonly expr?: string
  readonly legendFormat?: string
  readonly queryType?: string
  readonly service?: string
}

interface Panel {
  readonly id: number
  readonly type: string
  readonly title: string
  readonly datasource?: DataSourceRef
  readonly targets?: ReadonlyArray<Target>
  readonly panels?: ReadonlyArray<Panel>
  readonly fieldConfig?: {
    readonly defaults: { readonly mappings?: ReadonlyArray<{ options: Record<string, { text: string }> }> }
  }
}

interface Dashboard {
  readonly uid: string
  readonly schemaVersion: number
  readonly panels: ReadonlyArray<Panel>
  readonly links: ReadonlyArray<{ readonly url: string }>
  readonly templating: {
    readonly list: ReadonlyArray<
      { readonly name: string; readonly type: string; readonly query: unknown; readonly datasource?: DataSourceRef }
    >
  }
}

const allPanels = (panels: ReadonlyArray<Panel>): ReadonlyArray<Panel> =>
  panels.flatMap((panel) => [panel, ...allPanels(panel.panels ?? [])])

const filesUnder = (dir: string): ReadonlyArray<string> =>
  fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? filesUnder(path.join(dir, entry.name)) : [path.join(dir, entry.name)]
  )

/** What an expression asks Prometheus for: series names, and label names used in matchers and groupings. */
interface PromQLUse {
  readonly series: ReadonlyArray<string>
  readonly labels: ReadonlyArray<string>
}

const promqlKeywords = new Set([
  "and",
  "or",
  "unless",
  "bool",
  "offset",
  "by",
  "without",
  "on",
  "ignoring",
  "group_left",
  "group_right",
  "inf",
  "nan"
])

/**
 * A lexical reading of PromQL, enough for dashboards: label matchers, groupings, ranges and strings
 * are taken out, function names are the identifiers followed by `(`, and what is left are series.
 * Grafana's `label_values(series, label)` is read as its series and label.
 */
const promqlUse = (expression: string): PromQLUse => {
  const labels: Array<string> = []
  let rest = expression.replace(/\blabel_values\(\s*([^,]+),\s*(\w+)\s*\)/g, (_, series: string, label: string) => {
    labels.push(label)
    return series
  })
  rest = rest.replace(/\{([^}]*)\}/g, (_, matchers: string) => {
    for (const [, label] of matchers.matchAll(/([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)/g)) labels.push(label!)
    return " "
  })
  rest = rest.replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g, (_, names: string) => {
    labels.push(...names.split(",").map((name) => name.trim()).filter((name) => name !== ""))
    return " "
  })
  rest = rest.replace(/\[[^\]]*\]/g, " ").replace(/"(?:[^"\\]|\\.)*"/g, " ")
  const series = [...rest.matchAll(/(?<![\w.$])([A-Za-z_:][\w:]*)(\s*\()?/g)]
    .filter(([, name, call]) => call === undefined && !promqlKeywords.has(name!.toLowerCase()))
    .map(([, name]) => name!)
  return { series, labels }
}

/** The label names an expression may use: its series' labels, `le` on buckets, and the target's. */
const labelsAvailable = (series: ReadonlyArray<string>): ReadonlySet<string> =>
  new Set([
    ...targetLabels,
    ...series.flatMap((s) => [...(metricOfSeries.get(s)?.labels ?? []), ...(s.endsWith("_bucket") ? ["le"] : [])])
  ])

/** Every PromQL expression in otel/: dashboard targets and variables, and the data sources' trace-to-metrics queries. */
const promqlExpressions = (): ReadonlyArray<
  { readonly where: string; readonly expr: string; readonly legend?: string }
> => {
  const fromPanels = allPanels(dashboard.panels).flatMap((panel) =>
    (panel.targets ?? [])
      .filter((target) => target.expr !== undefined)
      .map((target) => ({
        where: `panel "${panel.title}" ${target.refId}`,
        expr: target.expr!,
        ...(target.legendFormat === undefined ? {} : { legend: target.legendFormat })
      }))
  )
  const fromVariables = dashboard.templating.list
    .filter((variable) => variable.type === "query")
    .map((variable) => ({
      where: `variable ${variable.name}`,
      expr: typeof variable.query === "string" ? variable.query : (variable.query as { query: string }).query
    }))
  const datasources = yamlFile("grafana/provisioning/datasources/datasources.yaml") as {
    datasources: ReadonlyArray<
      { name: string; jsonData?: { tracesToMetrics?: { queries: ReadonlyArray<{ query: string }> } } }
    >
  }
  const fromDataSources = datasources.datasources.flatMap((source) =>
    (source.jsonData?.tracesToMetrics?.queries ?? []).map(({ query }) => ({
      where: `data source ${source.name}`,
      expr: query
    }))
  )
  return [...fromPanels, ...fromVariables, ...fromDataSources]
}

describe("otel/ operator files", () => {
  it("every YAML and JSON file parses", () => {
    const files = filesUnder(otelDir).map((file) => path.relative(otelDir, file)).sort()
    expect(files).toEqual(expect.arrayContaining([
      "collector.yaml",
      "compose.yaml",
      "grafana/dashboards/sentinel.json",
      "grafana/provisioning/dashboards/dashboards.yaml",
      "grafana/provisioning/datasources/datasources.yaml",
      "jaeger.yaml",
      "prometheus.yml"
    ]))
    for (const file of files) {
      const text = read(file)
      if (/\.ya?ml$/.test(file)) expect(() => parse(text), file).not.toThrow()
      if (file.endsWith(".json")) expect(() => JSON.parse(text), file).not.toThrow()
    }
  })

  it("the PromQL reader finds series and labels, and nothing else", () => {
    expect(
      promqlUse(
        "histogram_quantile(0.95, sum by (le, path) (rate(sentinel_batch_duration_seconds_bucket{instance=~\"$instance\"}[$__rate_interval])))"
      )
    ).toEqual({ series: ["sentinel_batch_duration_seconds_bucket"], labels: ["instance", "le", "path"] })
    expect(promqlUse("min(time() - process_start_time_seconds) or vector(0)")).toEqual({
      series: ["process_start_time_seconds"],
      labels: []
    })
    expect(promqlUse("label_values(sentinel_ready, instance)")).toEqual({
      series: ["sentinel_ready"],
      labels: ["instance"]
    })
  })

  it("every PromQL expression uses only Sentinel's series and their labels, and the dashboard shows every metric", () => {
    const expressions = promqlExpressions()
    expect(expressions.length).toBeGreaterThan(30)
    const problems: Array<string> = []
    const shown = new Set<string>()
    for (const { expr, legend, where } of expressions) {
      const use = promqlUse(expr)
      if (use.series.length === 0) problems.push(`${where}: no series in ${expr}`)
      for (const series of use.series) {
        const metric = metricOfSeries.get(series)
        if (metric === undefined) problems.push(`${where}: unknown series ${series}`)
        else if (where.startsWith("panel")) shown.add(metric.name)
      }
      const available = labelsAvailable(use.series)
      for (const label of use.labels) {
        if (!available.has(label)) problems.push(`${where}: label ${label} is not on ${use.series.join(", ")}`)
      }
      for (const [, label] of (legend ?? "").matchAll(/\{\{\s*(\w+)\s*\}\}/g)) {
        if (!available.has(label!)) problems.push(`${where}: legend label ${label} is not on ${use.series.join(", ")}`)
      }
    }
    expect(problems).toEqual([])
    expect(documentedMetrics.map((metric) => metric.name).filter((name) => !shown.has(name))).toEqual([])
  })

  it("the dashboard is uid sentinel, schema 39+, with unique panel ids and only provisioned data sources", () => {
    expect(dashboard.uid).toBe("sentinel")
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(39)
    const panels = allPanels(dashboard.panels)
    const ids = panels.map((panel) => panel.id)
    expect(new Set(ids).size).toBe(ids.length)

    const provisioned = (yamlFile("grafana/provisioning/datasources/datasources.yaml") as {
      datasources: ReadonlyArray<{ uid: string; type: string }>
    }).datasources
    expect(provisioned.map(({ type, uid }) => ({ type, uid }))).toEqual(expect.arrayContaining([
      { type: "prometheus", uid: "prometheus" },
      { type: "jaeger", uid: "jaeger" }
    ]))
    const refs = [
      ...panels.flatMap((panel) => [panel.datasource, ...(panel.targets ?? []).map((target) => target.datasource)]),
      ...dashboard.templating.list.map((variable) => variable.datasource)
    ].filter((ref): ref is DataSourceRef => ref !== undefined)
    for (const ref of refs) {
      expect(provisioned, JSON.stringify(ref)).toContainEqual(expect.objectContaining({ uid: ref.uid, type: ref.type }))
    }
  })

  it("the dashboard shows breaker states as closed, half-open and open, and Sentinel's traces from Jaeger", () => {
    const panels = allPanels(dashboard.panels)
    const breakers = panels.find((panel) =>
      (panel.targets ?? []).some((t) => t.expr?.includes("circuit_breaker_state"))
    )
    const mapping = breakers?.fieldConfig?.defaults.mappings?.[0]?.options ?? {}
    expect(Object.fromEntries(Object.entries(mapping).map(([value, { text }]) => [value, text]))).toEqual({
      "0": "closed",
      "1": "half-open",
      "2": "open"
    })

    const traces = panels.flatMap((panel) => panel.targets ?? []).filter((t) => t.datasource?.uid === "jaeger")
    expect(traces).toContainEqual(expect.objectContaining({ queryType: "search", service: "$service" }))
    const service = dashboard.templating.list.find((variable) => variable.name === "service")
    expect(service?.query).toBe("sentinel")
    expect(dashboard.links.map((link) => link.url)).toContain("${jaeger_ui}/search?service=${service}")
  })

  it("Grafana loads the dashboards and data sources that Compose mounts, from services Compose runs", () => {
    const grafana = compose.services.grafana!
    const mounts = new Map((grafana.volumes ?? []).map((volume) => volume.split(":") as [string, string]))
    expect(mounts.get("./grafana/provisioning")).toBe("/etc/grafana/provisioning")
    const providers = (yamlFile("grafana/provisioning/dashboards/dashboards.yaml") as {
      providers: ReadonlyArray<{ type: string; options: { path: string } }>
    }).providers
    expect(providers).toContainEqual(
      expect.objectContaining({
        type: "file",
        options: expect.objectContaining({ path: "/var/lib/grafana/dashboards" })
      })
    )
    expect(mounts.get("./grafana/dashboards")).toBe("/var/lib/grafana/dashboards")

    const urls = (yamlFile("grafana/provisioning/datasources/datasources.yaml") as {
      datasources: ReadonlyArray<{ uid: string; url: string }>
    }).datasources.map(({ url }) => new URL(url))
    expect(urls.map((url) => url.host)).toEqual(["prometheus:9090", "jaeger:16686"])
    for (const url of urls) expect(Object.keys(compose.services)).toContain(url.hostname)
  })

  it("Prometheus scrapes the daemon's /metrics every 5 s where Compose serves it", () => {
    const prometheus = yamlFile("prometheus.yml") as {
      scrape_configs: ReadonlyArray<
        {
          job_name: string
          scrape_interval: string
          metrics_path: string
          static_configs: ReadonlyArray<{ targets: ReadonlyArray<string> }>
        }
      >
    }
    const job = prometheus.scrape_configs.find((config) => config.job_name === "sentinel")
    expect(job).toMatchObject({ scrape_interval: "5s", metrics_path: "/metrics" })
    expect(job!.static_configs.flatMap((config) => config.targets)).toEqual(["sentinel:9464"])

    const sentinel = compose.services.sentinel!
    expect(sentinel.environment).toMatchObject({ SENTINEL_HTTP_HOST: "0.0.0.0", SENTINEL_HTTP_PORT: "9464" })
    expect(compose.services.prometheus!.volumes).toContain("./prometheus.yml:/etc/prometheus/prometheus.yml:ro")
  })

  it("the daemon in Compose reaches its services by their Compose names and sends traces over OTLP/HTTP", () => {
    const sentinel = compose.services.sentinel!
    const environment = sentinel.environment ?? {}
    const hostOf = (url: string) => new URL(url).hostname
    expect(String(environment.KAFKA_BROKERS).split(":")[0]).toBe("kafka")
    expect(hostOf(String(environment.DATABASE_URL))).toBe("postgres")
    expect(hostOf(String(environment.CLICKHOUSE_URL))).toBe("clickhouse")
    expect(environment.OTEL_EXPORTER_OTLP_ENDPOINT).toBe("${SENTINEL_OTLP_ENDPOINT:-http://jaeger:4318}")
    for (const [name, service] of Object.entries(compose.services)) {
      for (const dependency of Object.keys(service.depends_on ?? {})) {
        expect(Object.keys(compose.services), `${name} depends on ${dependency}`).toContain(dependency)
      }
      for (const volume of service.volumes ?? []) {
        const source = volume.split(":")[0]!
        if (source.startsWith(".")) expect(fs.existsSync(path.join(otelDir, source)), `${name}: ${source}`).toBe(true)
      }
    }
    expect(Object.keys(sentinel.depends_on ?? {}).sort()).toEqual(["clickhouse", "jaeger", "kafka", "postgres"])
  })

  it("the collector takes OTLP on 4317 and 4318 and every pipeline uses components it defines", () => {
    const collector = yamlFile("collector.yaml") as {
      receivers: Record<string, { protocols?: Record<string, { endpoint: string }> }>
      processors: Record<string, unknown>
      exporters: Record<string, { endpoint?: string }>
      extensions: Record<string, unknown>
      service: {
        extensions: ReadonlyArray<string>
        pipelines: Record<
          string,
          { receivers: ReadonlyArray<string>; processors: ReadonlyArray<string>; exporters: ReadonlyArray<string> }
        >
      }
    }
    expect(collector.receivers.otlp!.protocols).toEqual({
      grpc: { endpoint: "0.0.0.0:4317" },
      http: { endpoint: "0.0.0.0:4318" }
    })
    expect(collector.exporters["otlp/jaeger"]!.endpoint).toBe("${env:JAEGER_OTLP_GRPC_ENDPOINT:-jaeger:4317}")
    for (const [name, pipeline] of Object.entries(collector.service.pipelines)) {
      for (const receiver of pipeline.receivers) expect(Object.keys(collector.receivers), name).toContain(receiver)
      for (const exporter of pipeline.exporters) expect(Object.keys(collector.exporters), name).toContain(exporter)
      expect(pipeline.processors, name).toEqual(["memory_limiter", "batch"])
      for (const processor of pipeline.processors) expect(Object.keys(collector.processors), name).toContain(processor)
    }
    for (const extension of collector.service.extensions) expect(Object.keys(collector.extensions)).toContain(extension)
    expect(compose.services.collector!.volumes).toContain("./collector.yaml:/etc/otelcol-contrib/config.yaml:ro")
  })
})
