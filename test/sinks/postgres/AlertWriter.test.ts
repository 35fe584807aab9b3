import { SqlClient } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { Context, Effect, Layer, Redacted, Schema } from "effect"
import pg from "pg"
import { describe, expect, it } from "vitest"
import { AuditEvent } from "../../../src/contract/AuditEvent.ts"
import { DetectionResult, type Severity } from "../../../src/contract/DetectionResult.ts"
import { auditEvent, detectionResult, seededRng } from "../../../src/produce/DetectorOutput.ts"
import { alertIdOf } from "../../../src/sinks/postgres/AlertId.ts"
import { AlertWriter, type AlertWriterConfig, layer, type PgBatch } from "../../../src/sinks/postgres/AlertWriter.ts"
import { migratePostgres } from "../../../src/sinks/postgres/Migrations.ts"
import { connectAs } from "../../../src/sinks/postgres/WriterRole.ts"
import type { KafkaRecord } from "../../../src/source/KafkaRecord.ts"
import { freshDatabase } from "../../support/services.ts"

// ---------------------------------------------------------------------------------------------------
// Records as the router hands them over

const recordAt = (topic: string, n: number, key: string | null, value: unknown): KafkaRecord => ({
  topic,
  partition: n % 3,
  offset: String(1_000 + n),
  timestamp: Date.UTC(2026, 3, 16, 8, 0, 0) + n,
  key,
  headers: { traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" },
  value: Buffer.from(JSON.stringify(value))
})

type Alert = PgBatch["alerts"][number]
type Audit = PgBatch["audits"][number]

/** Result number n of the generator, as an alert of `severity` for `user` when given. */
const alert = (n: number, overrides: { readonly severity?: Severity; readonly user?: string } = {}): Alert => {
  const wire = detectionResult(seededRng(n), n, { alertShare: 1 })
  const result = Schema.decodeSync(DetectionResult)(wire)
  return {
    result: {
      ...result,
      severity: overrides.severity ?? result.severity,
      transaction: { ...result.transaction, user_id: overrides.user ?? result.transaction.user_id }
    },
    source: recordAt("fraud-detection-results", n, result.transaction.user_id, wire)
  }
}

const audit = (n: number): Audit => {
  const wire = auditEvent(seededRng(n), n)
  return { event: Schema.decodeSync(AuditEvent)(wire), source: recordAt("audit-events", n, wire.entity_id, wire) }
}

const deadLetter = (n: number): PgBatch["deadLetters"][number] => ({
  record: {
    ...recordAt("fraud-detection-results", n, "U\u0000nul", "not json"),
    value: Buffer.from([0xff, 0x00, 0x7b])
  },
  kind: "not_json",
  message: `Unexpected token at position ${n}`
})

const batchOf = (parts: Partial<PgBatch>): PgBatch => ({ alerts: [], audits: [], deadLetters: [], ...parts })

// ---------------------------------------------------------------------------------------------------
// A database per test; the writer runs as the daemon's role, checks as the owner

interface Harness {
  readonly write: (batch: PgBatch) => Promise<Effect.Effect.Success<ReturnType<AlertWriter["Type"]["write"]>>>
  readonly fail: (batch: PgBatch) => Promise<unknown>
  readonly query: <A extends object>(text: string) => Promise<ReadonlyArray<A>>
  /** Statements the writer's connections have sent so far. */
  readonly statements: () => number
}

/** The daemon's pool, counting the statements its connections send. */
const countingPool = (url: Redacted.Redacted) => {
  let statements = 0
  const pool = new pg.Pool({ connectionString: Redacted.value(connectAs(url)) })
  pool.on("connect", (client) => {
    const query = client.query.bind(client)
    client.query = ((...args: Parameters<typeof query>) => {
      statements++
      return query(...args)
    }) as typeof client.query
  })
  return {
    statements: () => statements,
    layer: PgClient.layerFromPool({
      acquire: Effect.acquireRelease(Effect.succeed(pool), (pool) => Effect.promise(() => pool.end()))
    })
  }
}

const withWriter = async (config: AlertWriterConfig, test: (harness: Harness) => Promise<void>): Promise<void> => {
  const db = await freshDatabase()
  const url = Redacted.make(db.url)
  try {
    await Effect.runPromise(Effect.provide(migratePostgres, PgClient.layer({ url })))
    const daemon = countingPool(url)
    const writer = layer(config).pipe(Layer.provideMerge(daemon.layer))
    const owner = PgClient.layer({ url })
    await Effect.runPromise(
      Effect.gen(function*() {
        const runtime = yield* Effect.runtime<AlertWriter | SqlClient.SqlClient>()
        const ownerSql = Context.get(yield* Layer.build(owner), SqlClient.SqlClient)
        const run = <A, E>(effect: Effect.Effect<A, E, AlertWriter>) =>
          Effect.runPromise(Effect.provide(effect, runtime))
        yield* Effect.promise(() =>
          test({
            write: (batch) => run(Effect.flatMap(AlertWriter, (w) => w.write(batch))),
            fail: (batch) => run(Effect.flip(Effect.flatMap(AlertWriter, (w) => w.write(batch)))),
            query: (text) => Effect.runPromise(ownerSql.unsafe(text)),
            statements: daemon.statements
          })
        )
      }).pipe(Effect.provide(writer), Effect.scoped)
    )
  } finally {
    await db.drop()
  }
}

/** Everything the writer can change, in a stable order, for before/after comparisons. */
const snapshot = async (query: Harness["query"]) => ({
  alerts: await query(
    `SELECT alert_id, transaction_id, user_id, severity, status FROM fraud_alerts ORDER BY transaction_id`
  ),
  accounts: await query(
    `SELECT user_id, status, alert_count, medium_count, high_count, critical_count, blocked_at, blocked_by_alert_id
     FROM user_accounts ORDER BY user_id`
  ),
  audit: await query<{ event_key: string; action: string; entity_id: string }>(
    `SELECT event_key, action, entity_id FROM system_audit_log ORDER BY event_key`
  ),
  outbox: await query<{ id: string; alert_id: string; payload: { transaction_id: string }; traceparent: string }>(
    `SELECT id, alert_id, payload, traceparent FROM outbox ORDER BY id`
  ),
  deadLetters: await query(
    `SELECT source_topic, source_partition, source_offset, key, value FROM dead_letters ORDER BY id`
  )
})

const shuffled = <A>(items: ReadonlyArray<A>, seed: number): Array<A> => {
  const rng = seededRng(seed)
  const copy = [...items]
  for (let i = copy.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1))
    ;[copy[i], copy[j]] = [copy[j]!, copy[i]!]
  }
  return copy
}

const range = (from: number, count: number): Array<number> => Array.from({ length: count }, (_, i) => from + i)

describe("AlertWriter", () => {
  it("writes a batch of alerts, audit events and dead letters in full", () =>
    withWriter({}, async ({ query, write }) => {
      const severities: ReadonlyArray<Severity> = ["MEDIUM", "HIGH", "CRITICAL", "MEDIUM"]
      // Three users with two or three alerts each; U0 and U2 have a CRITICAL one.
      const alerts = range(1, 8).map((n) => alert(n, { severity: severities[n % 4]!, user: `U${n % 3}` }))
      const audits = range(100, 5).map(audit)
      const summary = await write(
        batchOf({
          alerts,
          audits,
          deadLetters: [deadLetter(7), deadLetter(8)],
          traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
          tracestate: "vendor=1"
        })
      )
      expect(summary).toEqual({ alertsCreated: 8, duplicates: 0, usersBlocked: 2, auditRows: 5, deadLetters: 2 })

      const stored = await snapshot(query)
      expect(stored.alerts).toEqual(
        alerts.map(({ result }) => ({
          alert_id: alertIdOf(result.transaction.transaction_id),
          transaction_id: result.transaction.transaction_id,
          user_id: result.transaction.user_id,
          severity: result.severity,
          status: "OPEN"
        }))
      )
      expect(stored.accounts).toMatchObject([
        { user_id: "U0", status: "BLOCKED", alert_count: 2, medium_count: 1, high_count: 0, critical_count: 1 },
        { user_id: "U1", status: "ACTIVE", alert_count: 3, medium_count: 2, high_count: 1, critical_count: 0 },
        { user_id: "U2", status: "BLOCKED", alert_count: 3, medium_count: 1, high_count: 1, critical_count: 1 }
      ])
      expect(stored.audit.filter((row) => row.action === "ALERT_CREATED")).toHaveLength(8)
      expect(stored.audit.filter((row) => row.action === "USER_BLOCKED").map((row) => row.entity_id)).toEqual(
        ["U0", "U2"]
      )
      expect(stored.audit).toHaveLength(8 + 2 + 5)
      expect(stored.outbox).toHaveLength(8)
      const first = alerts[0]!.result
      expect(stored.outbox.find((row) => row.payload.transaction_id === first.transaction.transaction_id)).toEqual(
        expect.objectContaining({
          traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
          payload: {
            alert_id: alertIdOf(first.transaction.transaction_id),
            transaction_id: first.transaction.transaction_id,
            user_id: "U1",
            severity: "HIGH",
            fraud_score: first.fraud_score,
            amount: first.transaction.amount,
            rules_triggered: [...first.business_rules_triggered],
            transaction_time: first.transaction.timestamp.replace("T", " "),
            created_at: expect.stringMatching(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}$/)
          }
        })
      )
      // A dead letter keeps its raw bytes exactly; text PostgreSQL cannot hold is made storable.
      expect(stored.deadLetters).toEqual([
        {
          source_topic: "fraud-detection-results",
          source_partition: 1,
          source_offset: "1007",
          key: "U\ufffdnul",
          value: Buffer.from([0xff, 0x00, 0x7b])
        },
        {
          source_topic: "fraud-detection-results",
          source_partition: 2,
          source_offset: "1008",
          key: "U\ufffdnul",
          value: Buffer.from([0xff, 0x00, 0x7b])
        }
      ])
    }))

  it("changes nothing when the same records come again, as the same batch or batched differently", () =>
    withWriter({}, async ({ query, write }) => {
      const alerts = range(1, 60).map((n) => alert(n, { user: `U${n % 7}` }))
      const audits = range(200, 20).map(audit)
      const deadLetters = range(300, 5).map(deadLetter)
      const batch = batchOf({ alerts, audits, deadLetters })
      const first = await write(batch)
      expect(first).toMatchObject({ alertsCreated: 60, duplicates: 0, auditRows: 20, deadLetters: 5 })
      const before = await snapshot(query)

      expect(await write(batch)).toEqual({
        alertsCreated: 0,
        duplicates: 60,
        usersBlocked: 0,
        auditRows: 0,
        deadLetters: 0
      })
      // Re-batched: shuffled, split unevenly, with records repeated inside a batch.
      const all = shuffled([
        ...alerts.map((a) => ({ a })),
        ...audits.map((u) => ({ u })),
        ...deadLetters.map((d) => ({ d }))
      ], 42)
      for (const part of [all.slice(0, 7), all.slice(7, 50), all.slice(50)]) {
        const repeated = [...part, ...part.slice(0, 3)]
        const summary = await write(
          batchOf({
            alerts: repeated.flatMap((x) => ("a" in x ? [x.a] : [])),
            audits: repeated.flatMap((x) => ("u" in x ? [x.u] : [])),
            deadLetters: repeated.flatMap((x) => ("d" in x ? [x.d] : []))
          })
        )
        expect(summary).toMatchObject({ alertsCreated: 0, usersBlocked: 0, auditRows: 0, deadLetters: 0 })
      }
      expect(await snapshot(query)).toEqual(before)
    }))

  it("counts a result repeated within one batch once", () =>
    withWriter({}, async ({ query, write }) => {
      const once = alert(1, { severity: "HIGH", user: "U1" })
      expect(await write(batchOf({ alerts: [once, once, alert(2, { severity: "HIGH", user: "U1" }), once] })))
        .toMatchObject({
          alertsCreated: 2,
          duplicates: 2
        })
      expect(await query(`SELECT alert_count, high_count FROM user_accounts`)).toEqual([{
        alert_count: 2,
        high_count: 2
      }])
      expect(await query(`SELECT count(*)::int AS n FROM outbox`)).toEqual([{ n: 2 }])
    }))

  it("blocks on CRITICAL once, and never moves a BLOCKED account back to ACTIVE", () =>
    withWriter({}, async ({ query, write }) => {
      expect(await write(batchOf({ alerts: [alert(1, { severity: "CRITICAL", user: "U1" })] }))).toMatchObject({
        usersBlocked: 1
      })
      const [blocked] = await query<
        { status: string; blocked_at: Date; blocked_by_alert_id: string; blocked_reason: string }
      >(
        `SELECT status, blocked_at, blocked_by_alert_id, blocked_reason FROM user_accounts WHERE user_id = 'U1'`
      )
      expect(blocked).toMatchObject({ status: "BLOCKED", blocked_by_alert_id: alertIdOf("T0000000001") })
      expect(blocked!.blocked_reason).toContain("CRITICAL")

      // Later alerts, CRITICAL or not, count but neither unblock nor block again.
      const later = await write(
        batchOf({
          alerts: [alert(2, { severity: "MEDIUM", user: "U1" }), alert(3, { severity: "CRITICAL", user: "U1" })]
        })
      )
      expect(later).toMatchObject({ alertsCreated: 2, usersBlocked: 0 })
      expect(
        await query(`SELECT status, alert_count, critical_count, blocked_at, blocked_by_alert_id FROM user_accounts`)
      )
        .toEqual([{
          status: "BLOCKED",
          alert_count: 3,
          critical_count: 2,
          blocked_at: blocked!.blocked_at,
          blocked_by_alert_id: blocked!.blocked_by_alert_id
        }])
      expect(await query(`SELECT count(*)::int AS n FROM system_audit_log WHERE action = 'USER_BLOCKED'`)).toEqual([{
        n: 1
      }])

      // An account blocked by someone else stays blocked too, and keeps the other's reason.
      await query(
        `INSERT INTO user_accounts (user_id, status, blocked_at, blocked_reason) VALUES ('U2', 'BLOCKED', now(), 'chargeback')`
      )
      await write(
        batchOf({
          alerts: [alert(4, { severity: "HIGH", user: "U2" }), alert(5, { severity: "CRITICAL", user: "U2" })]
        })
      )
      expect(await query(`SELECT status, blocked_reason, alert_count FROM user_accounts WHERE user_id = 'U2'`)).toEqual(
        [
          { status: "BLOCKED", blocked_reason: "chargeback", alert_count: 2 }
        ]
      )
    }))

  it("blocks on the configured severities", () =>
    withWriter({ autoBlockSeverities: ["HIGH", "CRITICAL"] }, async ({ query, write }) => {
      const summary = await write(
        batchOf({
          alerts: [
            alert(1, { severity: "MEDIUM", user: "U1" }),
            alert(2, { severity: "HIGH", user: "U2" }),
            alert(3, { severity: "CRITICAL", user: "U3" })
          ]
        })
      )
      expect(summary.usersBlocked).toBe(2)
      expect(await query(`SELECT user_id, status FROM user_accounts ORDER BY user_id`)).toEqual([
        { user_id: "U1", status: "ACTIVE" },
        { user_id: "U2", status: "BLOCKED" },
        { user_id: "U3", status: "BLOCKED" }
      ])
    }))

  it("leaves nothing behind when a statement fails mid-transaction, and calls the failure permanent", () =>
    withWriter({}, async ({ fail, query }) => {
      // Alerts and audit events are written first; the dead letter's partition then overflows `integer`.
      const poisoned = deadLetter(1)
      const error = await fail(
        batchOf({
          alerts: range(1, 10).map((n) => alert(n)),
          audits: [audit(50)],
          deadLetters: [{ ...poisoned, record: { ...poisoned.record, partition: 2 ** 31 } }]
        })
      )
      expect(error).toMatchObject({ _tag: "PostgresWriteError", classification: "permanent", code: "22003" })
      const empty = { alerts: [], accounts: [], audit: [], outbox: [], deadLetters: [] }
      expect(await snapshot(query)).toEqual(empty)
    }))

  it("writes a batch of 5,000 alerts with audit events and dead letters in five statements", () =>
    withWriter({}, async ({ query, statements, write }) => {
      const batches = 2
      const size = 5_000
      const prepared = range(0, batches).map((b) =>
        batchOf({
          alerts: range(b * size, size).map((n) => alert(n)),
          audits: range(b * 100, 100).map(audit),
          deadLetters: range(b * 100, 100).map(deadLetter)
        })
      )
      const started = performance.now()
      for (const batch of prepared) {
        const before = statements()
        expect(await write(batch)).toMatchObject({ alertsCreated: size, auditRows: 100, deadLetters: 100 })
        // BEGIN, alerts (with accounts, audit rows and outbox rows), audit events, dead letters, COMMIT.
        expect(statements() - before).toBe(5)
      }
      const seconds = (performance.now() - started) / 1000
      // Wall-clock depends on the machine and its load, so it is reported, not asserted.
      console.log(
        `AlertWriter: ${batches * size} alerts in ${seconds.toFixed(2)} s = ${
          Math.round((batches * size) / seconds)
        } alerts/s`
      )
      expect(await query(`SELECT count(*)::int AS n FROM outbox`)).toEqual([{ n: batches * size }])
    }))
})
