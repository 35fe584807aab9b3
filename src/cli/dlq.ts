import { Data, Effect } from "effect"
import { isUtf8 } from "node:buffer"
import type { SentinelSettings } from "../config/Config.ts"
import { replayDeadLetters, replayHeader, type ReplayOptions } from "../produce/DeadLetterReplay.ts"
import * as DeadLetterStore from "../sinks/postgres/DeadLetterStore.ts"
import type { Command, OptionValues } from "./Command.ts"
import {
  asId,
  clip,
  noWords,
  type Options,
  postgresLayer,
  printJson,
  printLine,
  readCommandLine,
  subcommand,
  table
} from "./Operator.ts"
import { UsageError } from "./UsageError.ts"

class DeadLetterNotFound extends Data.TaggedError("DeadLetterNotFound")<{ readonly id: string }> {
  override get message() {
    return `no dead letter ${this.id}`
  }
}

/** A letter whole, as JSON: the value as UTF-8 text when it is valid UTF-8, else base64. */
const describe = (letter: DeadLetterStore.DeadLetter) => ({
  id: letter.id,
  receivedAt: letter.receivedAt.toISOString(),
  error: { kind: letter.errorKind, message: letter.errorMessage },
  source: {
    topic: letter.source.topic,
    partition: letter.source.partition,
    offset: letter.source.offset,
    timestamp: letter.source.timestamp.toISOString()
  },
  key: letter.key,
  headers: letter.headers,
  value: letter.value === null
    ? null
    : isUtf8(letter.value)
    ? { encoding: "utf8", bytes: letter.value.length, text: letter.value.toString("utf8") }
    : { encoding: "base64", bytes: letter.value.length, text: letter.value.toString("base64") },
  replayedAt: letter.replayedAt?.toISOString() ?? null,
  replayCount: letter.replayCount
})

interface ListRequest {
  readonly filter: DeadLetterStore.DeadLetterFilter
  readonly limit: number
  readonly json: boolean
}

const list = ({ filter, json, limit }: ListRequest) =>
  Effect.gen(function*() {
    const store = yield* DeadLetterStore.DeadLetterStore
    const letters = yield* store.select(filter, { order: "newest", limit })
    if (json) {
      for (const letter of letters) yield* printJson(describe(letter))
      return 0
    }
    if (letters.length === 0) {
      yield* printLine("no dead letters")
      return 0
    }
    yield* printLine(table(
      ["ID", "RECEIVED", "KIND", "SOURCE", "REPLAYS", "ERROR"],
      letters.map((letter) => [
        letter.id,
        letter.receivedAt.toISOString(),
        letter.errorKind,
        `${letter.source.topic}/${letter.source.partition}@${letter.source.offset}`,
        String(letter.replayCount),
        clip(letter.errorMessage, 80)
      ])
    ))
    return 0
  })

const show = (id: string, json: boolean) =>
  Effect.gen(function*() {
    const store = yield* DeadLetterStore.DeadLetterStore
    const [letter] = yield* store.select({ ids: [id] }, { order: "newest", limit: 1 })
    if (letter === undefined) return yield* new DeadLetterNotFound({ id })
    const described = describe(letter)
    if (json) {
      yield* printJson(described)
      return 0
    }
    const headers = Object.entries(letter.headers).map(([name, value]) => `${name}: ${value}`)
    yield* printLine(
      [
        `dead letter ${letter.id}`,
        `  received   ${described.receivedAt}`,
        `  error      ${letter.errorKind}: ${letter.errorMessage}`,
        `  source     topic ${letter.source.topic}, partition ${letter.source.partition}, offset ${letter.source.offset}, timestamp ${described.source.timestamp}`,
        `  key        ${letter.key ?? "(none)"}`,
        `  headers    ${headers.length === 0 ? "(none)" : headers.join("\n             ")}`,
        `  replayed   ${
          letter.replayedAt === null ? "never" : `${letter.replayCount} time(s), last at ${described.replayedAt}`
        }`,
        described.value === null
          ? "  value      (none)"
          : `  value      ${described.value.bytes} bytes, ${described.value.encoding}:\n${described.value.text}`
      ].join("\n")
    )
    return 0
  })

const replaySelection = (options: Options): ReplayOptions => {
  const ids = options.ids("id")
  const kind = options.string("kind")
  const since = options.time("since")
  // Never everything by accident: undecodable records would only come back as new dead letters.
  if (ids === undefined && kind === undefined && since === undefined) {
    throw new UsageError("name the dead letters to replay: --id, --kind and/or --since")
  }
  return { ids, kind, since, again: options.flag("again"), dryRun: options.flag("dry-run") }
}

type Request =
  | { readonly _tag: "list"; readonly request: ListRequest }
  | { readonly _tag: "show"; readonly id: string; readonly json: boolean }
  | { readonly _tag: "replay"; readonly selection: ReplayOptions }

const request = (values: OptionValues, positionals: ReadonlyArray<string>): Request => {
  const { name, options, words } = subcommand(positionals, values, {
    list: ["kind", "topic", "since", "limit", "json"],
    show: ["json"],
    replay: ["id", "kind", "since", "again", "dry-run"]
  })
  switch (name) {
    case "list":
      noWords(name, words)
      return {
        _tag: name,
        request: {
          filter: { kind: options.string("kind"), topic: options.string("topic"), since: options.time("since") },
          limit: options.positiveInteger("limit") ?? 50,
          json: options.flag("json")
        }
      }
    case "show":
      if (words.length !== 1) throw new UsageError("show takes one dead letter id")
      return { _tag: name, id: asId("show", words[0]!), json: options.flag("json") }
    case "replay":
      noWords(name, words)
      return { _tag: name, selection: replaySelection(options) }
  }
}

const execute = (
  settings: SentinelSettings,
  parsed: Request
): Effect.Effect<number, unknown, DeadLetterStore.DeadLetterStore> => {
  switch (parsed._tag) {
    case "list":
      return list(parsed.request)
    case "show":
      return show(parsed.id, parsed.json)
    case "replay":
      return replayDeadLetters(settings.kafka, parsed.selection).pipe(Effect.flatMap(printJson), Effect.as(0))
  }
}

const run = (settings: SentinelSettings, values: OptionValues, positionals: ReadonlyArray<string>) =>
  Effect.flatMap(readCommandLine(() => request(values, positionals)), (parsed) =>
    execute(settings, parsed).pipe(
      Effect.provide(DeadLetterStore.layer),
      Effect.provide(postgresLayer(settings, "dlq"))
    ))

export const dlqCommand: Command = {
  summary: "list, show and replay dead letters",
  usage: [
    "sentinel dlq list [--kind K] [--topic T] [--since ISO] [--limit N] [--json]",
    "       sentinel dlq show <id> [--json]",
    "       sentinel dlq replay [--id N ...] [--kind K] [--since ISO] [--again] [--dry-run]",
    "",
    "  list     dead letters, newest first: a table, or one JSON object per line with --json",
    "    --kind K       only this kind: empty, not_utf8, not_json, invalid, unknown_topic,",
    "                   rejected_by_postgres, rejected_by_clickhouse",
    "    --topic T      only records from this topic",
    "    --since ISO    only letters received at or after this time",
    "    --limit N      at most N letters (default 50)",
    "  show     one letter whole: headers, value (UTF-8 text when valid, else base64), error, source",
    "  replay   once a letter's cause is fixed, re-publishes its record to its original topic (same key,",
    "           value and headers, plus " + replayHeader + ": <id>) with an idempotent producer, so it flows",
    "           through both paths like a new record (every write is idempotent), then marks the letter",
    "           replayed. A record that fails again becomes a new dead letter (it has a new offset).",
    "           Prints a JSON summary. Needs the daemon running to consume what it publishes.",
    "    --id N         this letter (repeat the option, or separate ids with commas)",
    "    --kind K       letters of this kind",
    "    --since ISO    letters received at or after this time",
    "    --again        also letters replayed before (left alone otherwise)",
    "    --dry-run      tell what would be replayed; publish and mark nothing",
    "",
    "Needs PostgreSQL (and Kafka for replay), not ClickHouse: it runs beside the daemon."
  ].join("\n"),
  options: {
    kind: { type: "string" },
    topic: { type: "string" },
    since: { type: "string" },
    limit: { type: "string" },
    json: { type: "boolean" },
    id: { type: "string", multiple: true },
    again: { type: "boolean" },
    "dry-run": { type: "boolean" }
  },
  allowPositionals: true,
  run
}
