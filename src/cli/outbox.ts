import { Effect, Layer } from "effect"
import type { SentinelSettings } from "../config/Config.ts"
import { outboxState, redrive } from "../outbox/Reconciliation.ts"
import * as ClickHouse from "../sinks/clickhouse/ClickHouse.ts"
import type { Command, OptionValues } from "./Command.ts"
import { noWords, postgresLayer, printJson, printLine, readCommandLine, subcommand } from "./Operator.ts"
import { UsageError } from "./UsageError.ts"

type Request =
  | { readonly _tag: "backlog"; readonly json: boolean }
  | {
    readonly _tag: "redrive"
    readonly from: bigint
    readonly to: bigint
    readonly dryRun: boolean
    readonly json: boolean
  }

const request = (values: OptionValues, positionals: ReadonlyArray<string>): Request => {
  const { name, options, words } = subcommand(positionals, values, {
    backlog: ["json"],
    redrive: ["from", "to", "dry-run", "json"]
  })
  noWords(name, words)
  if (name === "backlog") return { _tag: name, json: options.flag("json") }
  const from = options.id("from")
  const to = options.id("to")
  if (from === undefined || to === undefined) throw new UsageError("redrive needs --from ID and --to ID")
  if (BigInt(from) > BigInt(to)) throw new UsageError(`--from ${from} is past --to ${to}`)
  return { _tag: name, from: BigInt(from), to: BigInt(to), dryRun: options.flag("dry-run"), json: options.flag("json") }
}

const backlog = (json: boolean) =>
  Effect.gen(function*() {
    const state = yield* outboxState
    if (json) return yield* printJson(state)
    const age = state.oldestPendingAgeSeconds === null ? "" : `, oldest ${state.oldestPendingAgeSeconds.toFixed(1)} s`
    yield* printLine(
      [
        `pending     ${state.pending}${age}`,
        `  unclaimed ${state.unclaimed}`,
        `  in flight ${state.inFlight} (claimed, lease running)`,
        `  expired   ${state.expired} (claimed, lease expired: the next claim takes them over)`,
        `published  ${state.published} kept for retention${
          state.publishedIds === null
            ? ""
            : `: ids ${state.publishedIds.first} to ${state.publishedIds.last}, oldest published ${state.oldestPublishedAt?.toISOString()}`
        }`
      ].join("\n")
    )
  })

const execute = (settings: SentinelSettings, parsed: Request): Effect.Effect<number, unknown> => {
  const postgres = postgresLayer(settings, "outbox")
  if (parsed._tag === "backlog") return backlog(parsed.json).pipe(Effect.as(0), Effect.provide(postgres))
  return redrive({ from: parsed.from, to: parsed.to }, parsed.dryRun).pipe(
    Effect.flatMap((outcome) =>
      parsed.json
        ? printJson(outcome)
        : printLine(
          `${outcome.dryRun ? "would re-queue" : "re-queued"} ${outcome.requeued} of ${outcome.checked} published ` +
            `alerts of outbox ids ${outcome.from} to ${outcome.to}; ${outcome.alreadyPresent} already in ClickHouse, ` +
            `${outcome.pending} not yet published (the relay's already)`
        )
    ),
    Effect.as(0),
    Effect.provide(Layer.merge(postgres, ClickHouse.layer(settings.clickhouse.target)))
  )
}

export const outboxCommand: Command = {
  summary: "inspect the outbox; re-send alerts ClickHouse lost",
  usage: [
    "sentinel outbox backlog [--json]",
    "       sentinel outbox redrive --from ID --to ID [--dry-run] [--json]",
    "",
    "  backlog   rows not yet published (waiting, claimed with the lease running, claimed with the lease",
    "            expired), the age of the oldest, and the published rows kept for retention with their ids.",
    "            PostgreSQL only: it runs beside the daemon.",
    "  redrive   re-sends the alerts of already-published outbox rows ID to ID (inclusive) that ClickHouse",
    "            `alerts` lacks, e.g. after a ClickHouse restore lost them, never doubling one: only those",
    "            ClickHouse is found to lack are queued again (under new outbox ids), and the relay delivers",
    "            each once; the others are left alone. Reports how many were re-queued and how many were",
    "            present. The daemon's relay (or `sentinel reconcile --repair`) delivers them.",
    "    --dry-run   tell what would be re-queued; change nothing",
    "",
    "redrive opens ClickHouse itself: with chDB (CLICKHOUSE_PATH, one process per folder) stop the daemon",
    "first and start it afterwards to deliver; with a ClickHouse server (CLICKHOUSE_URL) it runs beside it."
  ].join("\n"),
  options: {
    from: { type: "string" },
    to: { type: "string" },
    "dry-run": { type: "boolean" },
    json: { type: "boolean" }
  },
  allowPositionals: true,
  run: (settings, values, positionals) =>
    Effect.flatMap(readCommandLine(() => request(values, positionals)), (parsed) => execute(settings, parsed))
}
