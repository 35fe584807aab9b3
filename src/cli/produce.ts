import { Effect } from "effect"
import type { SentinelSettings } from "../config/Config.ts"
import { produce } from "../produce/Producer.ts"
import * as Tracing from "../telemetry/Tracing.ts"
import type { Command } from "./Command.ts"
import { UsageError } from "./UsageError.ts"

const number = (values: Record<string, unknown>, name: string, check: (n: number) => boolean, expects: string) => {
  const raw = values[name]
  if (raw === undefined) return undefined
  const parsed = Number(raw)
  if (typeof raw !== "string" || raw.trim() === "" || !check(parsed)) {
    throw new UsageError(`--${name} expects ${expects}, got "${String(raw)}"`)
  }
  return parsed
}

const share = (n: number) => Number.isFinite(n) && n >= 0 && n <= 1

/** `sentinel produce`: prints what it published, and what Sentinel must make of it, as JSON. */
const produceRecords = (settings: SentinelSettings, values: Record<string, unknown>) =>
  Effect.gen(function*() {
    const options = yield* Effect.try({
      try: () => {
        const count = number(values, "count", (n) => Number.isInteger(n) && n > 0, "a positive integer")
        if (count === undefined) throw new UsageError("--count is required")
        const rate = number(values, "rate", (n) => Number.isFinite(n) && n > 0, "a positive number")
        const malformedShare = number(values, "malformed", share, "a share between 0 and 1")
        const duplicateShare = number(values, "duplicates", share, "a share between 0 and 1")
        const alertShare = number(values, "alert-share", share, "a share between 0 and 1")
        const seed = number(values, "seed", Number.isInteger, "an integer")
        const first = number(values, "first", (n) => Number.isInteger(n) && n >= 0, "a non-negative integer")
        const start = values.start === undefined ? new Date() : new Date(String(values.start))
        if (Number.isNaN(start.getTime())) {
          throw new UsageError(`--start expects an ISO-8601 time, got "${String(values.start)}"`)
        }
        return {
          count,
          rate,
          start,
          ...(malformedShare === undefined ? {} : { malformedShare }),
          ...(duplicateShare === undefined ? {} : { duplicateShare }),
          ...(alertShare === undefined ? {} : { alertShare }),
          ...(seed === undefined ? {} : { seed }),
          ...(first === undefined ? {} : { first })
        }
      },
      catch: (error) => error
    })
    const started = Date.now()
    const outcome = yield* produce(settings.kafka, options).pipe(
      Effect.provide(
        Tracing.layer({ serviceName: settings.telemetry.serviceName, endpoint: settings.telemetry.otlpEndpoint })
      )
    )
    const seconds = (Date.now() - started) / 1000
    process.stdout.write(
      `${JSON.stringify({ ...outcome, seconds, perSecond: Math.round(outcome.records / seconds) })}\n`
    )
    return 0
  })

export const produceCommand: Command = {
  summary: "publish realistic detector output to Sentinel's topics",
  usage:
    "sentinel produce --count N [--rate R] [--malformed F] [--duplicates F] [--alert-share F] [--seed S] [--start T] [--first N]\n" +
    "  --count N         records to publish (re-sent duplicates included)\n" +
    "  --rate R          records per second (default: as fast as possible)\n" +
    "  --malformed F     share of malformed records, 0..1 (default 0.01)\n" +
    "  --duplicates F    share of re-sent detection results, 0..1 (default 0.01)\n" +
    "  --alert-share F   share of results at MEDIUM or above, 0..1 (default 0.20)\n" +
    "  --seed S          seed: the same seed and start publish the same records (default 1)\n" +
    "  --start T         when the first transaction happened, ISO-8601; one per second after (default: now)\n" +
    "  --first N         number of the first record: its transaction id is T<N>, so runs can follow one another (default 0)",
  options: {
    count: { type: "string" },
    rate: { type: "string" },
    malformed: { type: "string" },
    duplicates: { type: "string" },
    "alert-share": { type: "string" },
    seed: { type: "string" },
    start: { type: "string" },
    first: { type: "string" }
  },
  run: (settings, values) => produceRecords(settings, values)
}
