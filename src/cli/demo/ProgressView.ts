/**
 * The demo's screen, as lines of text: where to look (printed once), the live progress (a frame
 * redrawn in place on a terminal, one compact line otherwise) and the answers to the view queries.
 */
import { table } from "../Operator.ts"
import {
  type Answer,
  clickhouseTables,
  type Counts,
  type Observation,
  postgresTables,
  type ViewQuery
} from "./Observation.ts"

export const count = (value: number): string => Math.round(value).toLocaleString("en-US")

export const clock = (ms: number): string => {
  const seconds = Math.floor(ms / 1000)
  return `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, "0")}`
}

const perSecond = (now: number, before: number, ms: number) => (ms <= 0 ? 0 : ((now - before) * 1000) / ms)

interface Rates {
  readonly published: number
  readonly alerts: number
  readonly analytics: number
}

const rates = (now: Observation, before: Observation | undefined): Rates => {
  const ms = now.elapsedMs - (before?.elapsedMs ?? 0)
  return {
    published: perSecond(now.published, before?.published ?? 0, ms),
    alerts: perSecond(now.durable.alerts, before?.durable.alerts ?? 0, ms),
    analytics: perSecond(now.durable.analytics, before?.durable.analytics ?? 0, ms)
  }
}

const lag = (observation: Observation): string => {
  const { kafka } = observation.readiness.components
  const groups = kafka.lag as Readonly<Record<string, number>> | undefined
  if (groups === undefined) return kafka.status === "down" ? `unknown (kafka: ${String(kafka.error)})` : "…"
  return Object.entries(groups).map(([group, records]) => `${group} ${count(records)}`).join(", ")
}

const outbox = (observation: Observation): string => {
  const pending = observation.readiness.components.outbox.pending
  return typeof pending === "number" ? count(pending) : "…"
}

const breakers = (observation: Observation): string =>
  Object.entries(observation.readiness.components.breakers).map(([name, { state }]) => `${name} ${state}`).join(", ")

export const deadLetters = (reasons: Observation["deadLetters"]): string => {
  const total = reasons.reduce((sum, [, n]) => sum + n, 0)
  return total === 0 ? "0" : `${count(total)} (${reasons.map(([reason, n]) => `${reason} ${count(n)}`).join(", ")})`
}

/** `table rows` pairs, or why there are none. */
export const rowsOf = <Table extends string>(
  counts: Counts<Table>,
  tables: ReadonlyArray<Table>
): ReadonlyArray<readonly [string, string]> =>
  "unavailable" in counts
    ? [["unavailable", counts.unavailable]]
    : tables.map((name) => [name, count(counts.rows[name])] as const)

export interface Places {
  /** Jaeger's UI, when known; otherwise where the traces go. */
  readonly traces: string
  readonly metrics: string | undefined
  readonly logs: string
  readonly queries: ReadonlyArray<ViewQuery>
  readonly answersEvery: string
}

export const whereToLook = (places: Places): ReadonlyArray<string> => [
  "where to look:",
  `  traces    ${places.traces}`,
  `  metrics   ${places.metrics ?? "off (SENTINEL_HTTP_PORT=off)"}`,
  `  logs      ${places.logs}`,
  `  queries   over ClickHouse's materialized views, answered ${places.answersEvery}:`,
  ...places.queries.flatMap((query, i) => [`    ${i + 1}. ${query.title}`, `       ${query.sql}`])
]

const cell = (value: unknown): string => (value === null || value === undefined ? "—" : String(value))

export const answerLines = (answers: ReadonlyArray<Answer>): ReadonlyArray<string> =>
  answers.flatMap((answer, i) => [
    `  ${i + 1}. ${answer.title}`,
    ...("unavailable" in answer
      ? [`     unavailable: ${answer.unavailable}`]
      : answer.rows.length === 0
      ? ["     (no rows yet)"]
      : table(
        Object.keys(answer.rows[0]!),
        answer.rows.map((row) => Object.values(row).map(cell))
      ).split("\n").map((line) => `     ${line}`))
  ])

/** The live view on a terminal; `status` says what the demo is doing, `target` is the producer's rate. */
export const frame = (
  now: Observation,
  before: Observation | undefined,
  target: number,
  status: string
): ReadonlyArray<string> => {
  const rate = rates(now, before)
  const postgres = rowsOf(now.postgres, postgresTables)
  const clickhouse = rowsOf(now.clickhouse, clickhouseTables)
  const stores = table(
    ["  PostgreSQL", "rows", "  ClickHouse", "rows"],
    Array.from({ length: Math.max(postgres.length, clickhouse.length) }, (_, i) => [
      `  ${postgres[i]?.[0] ?? ""}`,
      postgres[i]?.[1] ?? "",
      `  ${clickhouse[i]?.[0] ?? ""}`,
      clickhouse[i]?.[1] ?? ""
    ])
  )
  return [
    `sentinel demo · ${clock(now.elapsedMs)} · ${status}`,
    "",
    table(
      ["", "total", "per second"],
      [
        ["  produced", count(now.published), `${count(rate.published)} of ${count(target)} wanted`],
        ["  durable, alert path (PostgreSQL)", count(now.durable.alerts), count(rate.alerts)],
        ["  durable, analytics path (ClickHouse)", count(now.durable.analytics), count(rate.analytics)]
      ]
    ),
    `  consumer lag    ${lag(now)}`,
    `  outbox backlog  ${outbox(now)}`,
    `  breakers        ${breakers(now)}`,
    `  dead letters    ${deadLetters(now.deadLetters)}`,
    "",
    stores
  ].flatMap((text) => text.split("\n"))
}

/** The periodic line when the output is not a terminal. */
export const line = (now: Observation, before: Observation | undefined, target: number): string => {
  const rate = rates(now, before)
  const rows = (name: string, pairs: ReadonlyArray<readonly [string, string]>) =>
    `${name} ${pairs.map(([table, n]) => `${table} ${n}`).join(" ")}`
  return [
    `[${clock(now.elapsedMs)}] produced ${count(now.published)} (${count(rate.published)}/s of ${count(target)}/s)`,
    `durable alerts ${count(now.durable.alerts)} (${count(rate.alerts)}/s)`,
    `durable analytics ${count(now.durable.analytics)} (${count(rate.analytics)}/s)`,
    `lag ${lag(now)}`,
    `outbox ${outbox(now)}`,
    `breakers ${breakers(now)}`,
    `dead letters ${deadLetters(now.deadLetters)}`,
    rows("postgres", rowsOf(now.postgres, postgresTables)),
    rows("clickhouse", rowsOf(now.clickhouse, clickhouseTables))
  ].join(" · ")
}
