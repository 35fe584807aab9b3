/**
 * OpenTelemetry tracing for Effect spans, exported over OTLP/HTTP. The exporter reads the
 * standard variables itself (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
 * OTEL_EXPORTER_OTLP_HEADERS, …); without an endpoint no tracer is installed at all.
 */
import { NodeSdk } from "@effect/opentelemetry"
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http"
import { BatchSpanProcessor } from "@opentelemetry/sdk-trace-base"
import { Layer } from "effect"

export interface TracingConfig {
  readonly serviceName: string
  readonly serviceVersion?: string
  /** The OTLP endpoint; tracing is off when undefined. */
  readonly endpoint: string | undefined
}

export const layer = ({ endpoint, serviceName, serviceVersion }: TracingConfig): Layer.Layer<never> =>
  endpoint === undefined
    ? Layer.empty
    : NodeSdk.layer(() => ({
      resource: {
        serviceName: serviceName,
        ...(serviceVersion === undefined ? {} : { serviceVersion: serviceVersion })
      },
      spanProcessor: new BatchSpanProcessor(
        new OTLPTraceExporter({ url: `${endpoint.replace(/\/$/, "")}/v1/traces` })
      )
    }))
