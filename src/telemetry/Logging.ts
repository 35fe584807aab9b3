/**
 * Logs as JSON lines on standard error, one object per line, through Effect's logger:
 *
 *   {"timestamp":"…","level":"INFO","message":"…","fiber_id":"#12","trace_id":"…","span_id":"…",
 *    "annotations":{…},"spans":{…},"cause":"…"}
 *
 * `trace_id` and `span_id` name the span the line was logged in, when there is one, so a log line
 * leads to its trace in Jaeger and back. Standard error, because standard output carries what a
 * command answers (`produce`, `health`, `breaker` print JSON there).
 *
 * Libraries that log through callbacks of their own — kafkajs, OpenTelemetry's diagnostics — are
 * routed into the same logger (`logExternal`), so that nothing else writes to the terminal.
 */
import {
  Cause,
  Context,
  Effect,
  FiberId,
  FiberRef,
  FiberRefs,
  HashMap,
  Inspectable,
  Layer,
  List,
  Logger,
  LogLevel,
  Runtime,
  Tracer
} from "effect"
import { type logCreator, logLevel as KafkaLogLevel } from "kafkajs"

const jsonValue = (value: unknown): unknown =>
  typeof value === "bigint" || typeof value === "symbol" || typeof value === "function"
    ? String(value)
    : value instanceof Error && !("toJSON" in value)
    ? { name: value.name, message: value.message }
    : Inspectable.toJSON(value)

/** One log entry as one line of JSON (without the newline). */
export const jsonLogger: Logger.Logger<unknown, string> = Logger.make(
  ({ annotations, cause, context, date, fiberId, logLevel, message, spans }) => {
    const parts = Array.isArray(message) ? message : [message]
    const entry: Record<string, unknown> = {
      timestamp: date.toISOString(),
      level: logLevel.label,
      message: parts.length === 1 ? jsonValue(parts[0]) : parts.map(jsonValue),
      fiber_id: FiberId.threadName(fiberId)
    }
    const span = Context.getOption(FiberRefs.getOrDefault(context, FiberRef.currentContext), Tracer.ParentSpan)
    if (span._tag === "Some") {
      entry.trace_id = span.value.traceId
      entry.span_id = span.value.spanId
    }
    if (HashMap.size(annotations) > 0) {
      const fields: Record<string, unknown> = {}
      for (const [key, value] of annotations) fields[key] = jsonValue(value)
      entry.annotations = fields
    }
    if (List.isCons(spans)) {
      const now = date.getTime()
      const timings: Record<string, number> = {}
      for (const logSpan of spans) timings[logSpan.label] = now - logSpan.startTime
      entry.spans = timings
    }
    if (!Cause.isEmpty(cause)) entry.cause = Cause.pretty(cause, { renderErrorCause: true })
    return Inspectable.stringifyCircular(entry)
  }
)

const toStandardError = Logger.map(jsonLogger, (line) => {
  process.stderr.write(`${line}\n`)
})

/** The runtime external libraries log through: the one `layer` installed, else Effect's default. */
let externalRuntime: Runtime.Runtime<never> = Runtime.defaultRuntime

/** Logs on behalf of a library that logs through a callback, with the daemon's logger and level. */
export const logExternal = (
  level: LogLevel.LogLevel,
  message: string,
  annotations: Readonly<Record<string, unknown>>
): void => Runtime.runSync(externalRuntime)(Effect.logWithLevel(level, message).pipe(Effect.annotateLogs(annotations)))

const kafkaLevels: Record<KafkaLogLevel, LogLevel.LogLevel> = {
  [KafkaLogLevel.NOTHING]: LogLevel.None,
  [KafkaLogLevel.ERROR]: LogLevel.Error,
  [KafkaLogLevel.WARN]: LogLevel.Warning,
  [KafkaLogLevel.INFO]: LogLevel.Info,
  [KafkaLogLevel.DEBUG]: LogLevel.Debug
}

/** kafkajs's `logCreator`: its entries as log lines of Sentinel's, annotated with their namespace and fields. */
export const kafkaLogCreator: logCreator = () => ({ level, log, namespace }) => {
  // The stack of a kafkajs error is kafkajs's internals; its message and fields say what happened.
  const { logger: _logger, message, stack: _stack, timestamp: _timestamp, ...fields } = log
  logExternal(kafkaLevels[level], message, { logger: "kafkajs", namespace, ...fields })
}

/**
 * JSON lines on standard error at `level` and above, for the effects it is provided to and for
 * the libraries that log through `logExternal`.
 */
export const layer = (level: LogLevel.LogLevel): Layer.Layer<never> => {
  const logging = Layer.merge(Logger.replace(Logger.defaultLogger, toStandardError), Logger.minimumLogLevel(level))
  const routeExternal = Effect.acquireRelease(
    Effect.runtime<never>().pipe(
      Effect.provide(logging),
      Effect.map((runtime) => {
        const previous = externalRuntime
        externalRuntime = runtime
        return previous
      })
    ),
    (previous) => Effect.sync(() => (externalRuntime = previous))
  )
  return Layer.merge(logging, Layer.scopedDiscard(routeExternal))
}
