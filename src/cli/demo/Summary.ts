/**
 * What the demo says when it stops: what was produced, what was persisted where, and whether every
 * produced record is accounted for — committed by both paths, every alert relayed, and the rows the
 * plan promised (its tally) arrived in their tables, no more and no fewer.
 */
import type { PlanTally } from "../../produce/DetectorOutput.ts"
import {
  type Answer,
  type ClickHouseTable,
  clickhouseTables,
  type Counts,
  type Observation,
  type PostgresTable,
  postgresTables
} from "./Observation.ts"
import { answerLines, clock, count, deadLetters } from "./ProgressView.ts"

export interface StoredRows {
  readonly postgres: Counts<PostgresTable>
  readonly clickhouse: Counts<ClickHouseTable>
}

/** Whether the daemon caught up with the producer before it was stopped, or how far behind it was. */
export type Drained = { readonly caughtUp: true } | { readonly caughtUp: false; readonly behind: string }

export interface Outcome {
  readonly elapsedMs: number
  /** Why the demo stopped. */
  readonly reason: string
  /** What the producer published, counted; or why it failed. */
  readonly produced: PlanTally | { readonly failed: string }
  readonly durable: Observation["durable"]
  readonly deadLetters: Observation["deadLetters"]
  readonly drained: Drained
  /** Rows before the daemon started and after it stopped: earlier runs' rows are not this run's. */
  readonly before: StoredRows
  readonly after: StoredRows
  readonly answers: ReadonlyArray<Answer>
}

const added = <Table extends string>(before: Counts<Table>, after: Counts<Table>, name: Table) =>
  "rows" in before && "rows" in after ? after.rows[name] - before.rows[name] : undefined

const rowsLine = <Table extends string>(
  before: Counts<Table>,
  after: Counts<Table>,
  tables: ReadonlyArray<Table>
): string => {
  if ("unavailable" in after) return `could not count: ${after.unavailable}`
  return tables.map((name) => {
    const earlier = "rows" in before ? before.rows[name] : 0
    return earlier === 0
      ? `${name} ${count(after.rows[name])}`
      : `${name} +${count(after.rows[name] - earlier)} (${count(after.rows[name])} in all)`
  }).join(" · ")
}

const sumOf = (values: Readonly<Record<string, number>>) => Object.values(values).reduce((sum, n) => sum + n, 0)

interface Check {
  readonly expected: string
  readonly stored: ReadonlyArray<readonly [what: string, rows: number | undefined]>
  readonly count: number
}

const checks = (tally: PlanTally, before: StoredRows, after: StoredRows): ReadonlyArray<Check> => [
  {
    expected: `${count(tally.alerts)} alerts`,
    count: tally.alerts,
    stored: [
      ["fraud_alerts", added(before.postgres, after.postgres, "fraud_alerts")],
      ["ClickHouse alerts", added(before.clickhouse, after.clickhouse, "alerts")]
    ]
  },
  {
    expected: `${count(sumOf(tally.detections))} distinct detection results`,
    count: sumOf(tally.detections),
    stored: [["detection_results", added(before.clickhouse, after.clickhouse, "detection_results")]]
  },
  {
    expected: `${count(sumOf(tally.malformed))} malformed`,
    count: sumOf(tally.malformed),
    stored: [["dead_letters", added(before.postgres, after.postgres, "dead_letters")]]
  }
]

const accounting = (outcome: Outcome): ReadonlyArray<string> => {
  if ("failed" in outcome.produced) return [`  accounted for: unknown, the producer failed: ${outcome.produced.failed}`]
  const results = checks(outcome.produced, outcome.before, outcome.after)
  const matches = (check: Check) => check.stored.every(([, rows]) => rows === check.count)
  const details = results.map((check) =>
    `    ${matches(check) ? "✓" : "✗"} ${check.expected} → ${
      check.stored.map(([what, rows]) => `${what} ${rows === undefined ? "?" : `+${count(rows)}`}`).join(", ")
    }`
  )
  const committed = "  accounted for: every produced record — committed by both paths (consumer lag 0), " +
    "every alert relayed (outbox backlog 0)"
  // Records of the topics this run did not publish: left in Kafka earlier, or redone after a path restarted.
  const others = Math.max(outcome.durable.alerts, outcome.durable.analytics) - outcome.produced.records
  if (!outcome.drained.caughtUp) return [`  accounted for: NOT ALL — ${outcome.drained.behind}:`, ...details]
  if (others > 0) {
    return [
      `${committed}; the daemon also took ${count(others)} records this run did not publish (left in Kafka ` +
      "earlier, or redone after a restart), so the rows are not compared one for one:",
      ...details.map((detail) => detail.replace(/^ {4}[✓✗]/, "    ·"))
    ]
  }
  return results.every(matches)
    ? [`${committed}, and`, ...details, `    ${count(outcome.produced.duplicates)} re-sent records changed nothing`]
    : ["  accounted for: NOT ALL — both paths caught up, but rows differ:", ...details]
}

export const summary = (outcome: Outcome): ReadonlyArray<string> => {
  const { produced } = outcome
  return [
    `sentinel demo stopped after ${clock(outcome.elapsedMs)} (${outcome.reason})`,
    "failed" in produced
      ? `  produced      the producer failed: ${produced.failed}`
      : `  produced      ${count(produced.records)} records: ${count(sumOf(produced.detections))} detection results (${
        count(produced.alerts)
      } alerts), ${count(produced.metrics)} metrics, ${count(produced.transactions)} transaction records, ${
        count(produced.audits)
      } audit events, ${count(sumOf(produced.malformed))} malformed, ${count(produced.duplicates)} re-sent`,
    `  durable       alert path ${count(outcome.durable.alerts)} · analytics path ${count(outcome.durable.analytics)}`,
    `  PostgreSQL    ${rowsLine(outcome.before.postgres, outcome.after.postgres, postgresTables)}`,
    `  ClickHouse    ${rowsLine(outcome.before.clickhouse, outcome.after.clickhouse, clickhouseTables)}`,
    `  dead letters  ${deadLetters(outcome.deadLetters)}`,
    ...accounting(outcome),
    "  the view queries' last answers:",
    ...answerLines(outcome.answers)
  ]
}
