/**
 * OpenTelemetry tracing for Effect spans, exported over OTLP/HTTP, configured by the standard
 * variables:
 * - where: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, else `OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/traces`;
 *   without either no tracer is installed at all. The exporter reads the rest itself
 *   (`OTEL_EXPORTER_OTLP_HEADERS`, `_TIMEOUT`, `_COMPRESSION`, certificates, their `_TRACES_` forms),
 *   the span processor its `OTEL_BSP_*` and the provider its `OTEL_SPAN_*_LIMIT`s;
 * - what: `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `service.version` from package.json, the
 *   host and process;
 * - how much: `OTEL_TRACES_SAMPLER` (`always_on`, `always_off`, `traceidratio`,
 *   `parentbased_always_on` — the default —, `parentbased_always_off`, `parentbased_traceidratio`)
 *   with `OTEL_TRACES_SAMPLER_ARG`, the ratio. A bad value stops the command as bad configuration.
 *
 * Spans still queued when the layer's scope closes (a SIGTERM'd daemon's last batches) are flushed
 * then, within `shutdownTimeout`. The exporter's complaints (a collector that is down) are logged.
 */
import { NodeSdk, Resource, Tracer as OtelTracer } from "@effect/opentelemetry"
import { diag, DiagLogLevel } from "@opentelemetry/api"
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http"
import {
  detectResources,
  envDetector,
  hostDetector,
  processDetector,
  resourceFromAttributes,
  serviceInstanceIdDetector
} from "@opentelemetry/resources"
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BatchSpanProcessor,
  ParentBasedSampler,
  type Sampler,
  TraceIdRatioBasedSampler
} from "@opentelemetry/sdk-trace-base"
import {
  ATTR_DB_COLLECTION_NAME,
  ATTR_DB_OPERATION_NAME,
  ATTR_DB_QUERY_SUMMARY,
  ATTR_DB_SYSTEM_NAME,
  ATTR_SERVICE_NAME,
  ATTR_SERVICE_VERSION,
  ATTR_TELEMETRY_SDK_LANGUAGE,
  ATTR_TELEMETRY_SDK_NAME,
  DB_SYSTEM_NAME_VALUE_CLICKHOUSE,
  TELEMETRY_SDK_LANGUAGE_VALUE_NODEJS
} from "@opentelemetry/semantic-conventions/incubating"
import { Config, ConfigError, Effect, Either, Layer, LogLevel, Option } from "effect"
import packageJson from "../../package.json" with { type: "json" }
import { logExternal } from "./Logging.ts"

export interface TracingConfig {
  readonly serviceName: string
  /** `OTEL_EXPORTER_OTLP_ENDPOINT`: the collector's base URL. */
  readonly endpoint: string | undefined
}

const samplerNames = [
  "always_on",
  "always_off",
  "traceidratio",
  "parentbased_always_on",
  "parentbased_always_off",
  "parentbased_traceidratio"
] as const

/** The SDK's sampler that `OTEL_TRACES_SAMPLER` names; the ratio is read only by the samplers that use it. */
const samplerConfig: Config.Config<Sampler> = Config.all([
  Config.literal(...samplerNames)("OTEL_TRACES_SAMPLER").pipe(Config.withDefault("parentbased_always_on" as const)),
  Config.option(Config.string("OTEL_TRACES_SAMPLER_ARG"))
]).pipe(
  Config.mapOrFail(([name, arg]) => {
    const ratio = Option.match(arg, { onNone: () => 1, onSome: (raw) => (raw.trim() === "" ? NaN : Number(raw)) })
    if (name.endsWith("traceidratio") && !(ratio >= 0 && ratio <= 1)) {
      return Either.left(ConfigError.InvalidData(["OTEL_TRACES_SAMPLER_ARG"], "expected a ratio from 0 to 1"))
    }
    const root = name.endsWith("always_on")
      ? new AlwaysOnSampler()
      : name.endsWith("always_off")
      ? new AlwaysOffSampler()
      : new TraceIdRatioBasedSampler(ratio)
    return Either.right(name.startsWith("parentbased_") ? new ParentBasedSampler({ root }) : root)
  })
)

/** The traces URL, when there is anywhere to send traces. */
const tracesUrl = (endpoint: string | undefined) =>
  Effect.map(
    Config.option(Config.string("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")),
    Option.orElse(() => Option.map(Option.fromNullable(endpoint), (base) => `${base.replace(/\/$/, "")}/v1/traces`))
  )

/**
 * Who sends the spans. Precedence, lowest first: what this process knows of itself,
 * `OTEL_RESOURCE_ATTRIBUTES`, the configured service name (`OTEL_SERVICE_NAME`, default sentinel).
 */
const resource = (serviceName: string) =>
  resourceFromAttributes({
    [ATTR_TELEMETRY_SDK_NAME]: "@effect/opentelemetry",
    [ATTR_TELEMETRY_SDK_LANGUAGE]: TELEMETRY_SDK_LANGUAGE_VALUE_NODEJS,
    [ATTR_SERVICE_VERSION]: packageJson.version
  })
    .merge(detectResources({ detectors: [hostDetector, processDetector, serviceInstanceIdDetector, envDetector] }))
    .merge(resourceFromAttributes({ [ATTR_SERVICE_NAME]: serviceName }))

/** OpenTelemetry's own warnings and errors (failed exports above all), as log lines. */
const diagnostics = Layer.scopedDiscard(
  Effect.acquireRelease(
    Effect.sync(() => {
      const log = (level: LogLevel.LogLevel) => (message: string, ...details: Array<unknown>) =>
        logExternal(level, message, {
          logger: "opentelemetry",
          ...(details.length === 0 ? {} : { details: details.map((d) => (d instanceof Error ? d.message : d)) })
        })
      diag.setLogger({
        error: log(LogLevel.Error),
        warn: log(LogLevel.Warning),
        info: log(LogLevel.Info),
        debug: log(LogLevel.Debug),
        verbose: log(LogLevel.Trace)
      }, DiagLogLevel.WARN)
    }),
    () => Effect.sync(() => diag.disable())
  )
)

export const layer = ({ endpoint, serviceName }: TracingConfig): Layer.Layer<never, ConfigError.ConfigError> =>
  Layer.unwrapEffect(Effect.gen(function*() {
    const url = yield* tracesUrl(endpoint)
    if (Option.isNone(url)) return Layer.empty
    const sampler = yield* samplerConfig
    const provider = NodeSdk.layerTracerProvider(new BatchSpanProcessor(new OTLPTraceExporter({ url: url.value })), {
      sampler,
      shutdownTimeout: "15 seconds"
    })
    return OtelTracer.layer.pipe(
      Layer.provide(provider),
      Layer.provide(Layer.succeed(Resource.Resource, resource(serviceName))),
      Layer.merge(diagnostics)
    )
  }))

/** A span around one INSERT into a ClickHouse table of `rows` rows. */
export const withClickHouseInsertSpan = (table: string, rows: number) =>
  Effect.withSpan("sentinel.clickhouse.insert", {
    kind: "client",
    attributes: {
      [ATTR_DB_SYSTEM_NAME]: DB_SYSTEM_NAME_VALUE_CLICKHOUSE,
      [ATTR_DB_COLLECTION_NAME]: table,
      [ATTR_DB_OPERATION_NAME]: "INSERT",
      [ATTR_DB_QUERY_SUMMARY]: `INSERT ${table}`,
      "sentinel.rows": rows
    }
  })
