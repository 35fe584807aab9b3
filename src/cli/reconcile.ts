import { Effect, Layer } from "effect"
import type { SentinelSettings } from "../config/Config.ts"
import { type Differences, reconcile, type ReconcileReport, sampleSize } from "../outbox/Reconciliation.ts"
import * as ClickHouse from "../sinks/clickhouse/ClickHouse.ts"
import type { Command, OptionValues } from "./Command.ts"
import { postgresLayer, printJson, printLine, readCommandLine, readOptions, table } from "./Operator.ts"
import { UsageError } from "./UsageError.ts"

/** Exit code when differences remain that this run did not repair. */
const differencesFound = 3

interface Request {
  readonly since: Date | undefined
  readonly until: Date
  readonly repair: boolean
  readonly json: boolean
}

const request = (values: OptionValues): Request => {
  const options = readOptions(values)
  const since = options.time("since")
  const until = options.time("until") ?? new Date()
  if (since !== undefined && since >= until) throw new UsageError("--since must come before --until")
  return { since, until, repair: options.flag("repair"), json: options.flag("json") }
}

/** Alerts whose differences remain after this run: the exit code's reason. */
const unresolved = (report: ReconcileReport): number =>
  (report.repaired === null ? report.missing.count : 0) + report.extra.count + report.duplicated.count

const alerts = (title: string, differences: Differences) => [
  `${title}: ${differences.count}`,
  ...(differences.count === 0
    ? []
    : [
      table(
        ["  ALERT", "TRANSACTION", "CREATED", "ROWS IN CLICKHOUSE"],
        differences.alerts.slice(0, 20).map((a) => [`  ${a.alertId}`, a.transactionId, a.createdAt, String(a.rows)])
      ),
      ...(differences.count > 20 ? [`  … and ${differences.count - 20} more (--json lists up to ${sampleSize})`] : [])
    ])
]

const describe = (report: ReconcileReport): string => {
  const differing = report.hours.filter((hour) => hour.postgres !== hour.clickhouse)
  return [
    `alerts created from ${report.since?.toISOString() ?? "the first"} to ${report.until.toISOString()}: ` +
    `PostgreSQL ${report.postgres}, ClickHouse ${report.clickhouse} (${report.hours.length} hours)`,
    ...(differing.length === 0
      ? ["every hour holds as many alerts on both sides"]
      : [
        "hours whose counts differ:",
        table(
          ["  HOUR (UTC)", "POSTGRESQL", "CLICKHOUSE"],
          differing.map((hour) => [`  ${hour.hour.toISOString()}`, String(hour.postgres), String(hour.clickhouse)])
        )
      ]),
    ...alerts("missing from ClickHouse", report.missing),
    ...alerts("pending in the outbox (on their way)", report.pending),
    ...alerts("extra in ClickHouse (not in PostgreSQL; never deleted here)", report.extra),
    ...alerts("duplicated in ClickHouse", report.duplicated),
    ...(report.repaired === null
      ? []
      : [
        `repaired: ${report.repaired.requeued + report.repaired.rebuilt} delivered to ClickHouse ` +
        `(outbox rows re-queued: ${report.repaired.requeued}, rebuilt: ${report.repaired.rebuilt})`
      ]),
    unresolved(report) === 0 ? "consistent" : `differences remain: ${unresolved(report)} alerts`
  ].join("\n")
}

const run = (settings: SentinelSettings, parsed: Request) =>
  reconcile({ since: parsed.since, until: parsed.until, repair: parsed.repair, relay: settings.outbox }).pipe(
    Effect.tap((report) => (parsed.json ? printJson(report) : printLine(describe(report)))),
    Effect.map((report) => (unresolved(report) === 0 ? 0 : differencesFound)),
    Effect.provide(
      Layer.merge(postgresLayer(settings, "reconcile"), ClickHouse.layer(settings.clickhouse.target))
    )
  )

export const reconcileCommand: Command = {
  summary: "compare PostgreSQL alerts with ClickHouse; re-send the missing ones",
  usage: [
    "sentinel reconcile [--since ISO] [--until ISO] [--repair] [--json]",
    "",
    "Compares PostgreSQL `fraud_alerts` with ClickHouse `alerts` over the alerts' created_at (Sentinel's",
    "clock, the same value on both sides): counts per hour, then the ids of each hour, one hour at a time.",
    "Reports alerts missing from ClickHouse, those still pending in the outbox (on their way, not a",
    "difference), extra ones (in ClickHouse, not in PostgreSQL) and duplicated ones.",
    "  --since ISO   from this time (default: the first alert)",
    "  --until ISO   up to this time, excluded (default: now)",
    "  --repair      queue the missing alerts again through the outbox (their outbox row re-queued, or",
    "                rebuilt when pruned) and relay them here, each landing once. Extra rows are reported,",
    "                never deleted.",
    `  --json        the report as one JSON object (lists capped at ${sampleSize} alerts, counts whole)`,
    "",
    "Exit codes: 0 consistent (or every difference repaired), 3 differences remain (missing alerts not",
    "repaired, extra or duplicated ones), 1 failed, 2 bad usage.",
    "It opens ClickHouse itself: with chDB (CLICKHOUSE_PATH, one process per folder) stop the daemon",
    "first; with a ClickHouse server (CLICKHOUSE_URL) it runs beside the daemon."
  ].join("\n"),
  options: {
    since: { type: "string" },
    until: { type: "string" },
    repair: { type: "boolean" },
    json: { type: "boolean" }
  },
  run: (settings, values) => Effect.flatMap(readCommandLine(() => request(values)), (parsed) => run(settings, parsed))
}
