/**
 * Writes one batch to PostgreSQL in one transaction: alerts with their user accounts, audit rows and
 * outbox rows, then audit events and dead letters. All of it commits or none of it does.
 *
 * Idempotent: an alert's id comes from its transaction id and `INSERT … ON CONFLICT DO NOTHING
 * RETURNING` decides which alerts are new; only those touch counters, block accounts, write audit rows
 * and outbox rows. Audit events and dead letters carry deterministic keys. A replayed batch — or the
 * same records batched differently — changes nothing.
 *
 * Set-based: each table gets one statement per batch, its rows passed as a single JSON parameter
 * (`json_to_recordset`), so a batch of thousands costs a handful of round trips.
 */
import { SqlClient } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import {
  ATTR_DB_NAMESPACE,
  ATTR_DB_OPERATION_NAME,
  ATTR_DB_QUERY_SUMMARY,
  ATTR_DB_SYSTEM_NAME,
  DB_SYSTEM_NAME_VALUE_POSTGRESQL
} from "@opentelemetry/semantic-conventions"
import { Context, Effect, Layer, Option } from "effect"
import { createHash } from "node:crypto"
import type { AuditEvent } from "../../contract/AuditEvent.ts"
import type { DetectionResult, Severity } from "../../contract/DetectionResult.ts"
import type { KafkaRecord } from "../../source/KafkaRecord.ts"
import { alertIdOf } from "./AlertId.ts"
import { type PostgresWriteError, postgresWriteError } from "./PostgresError.ts"

export interface PgBatch {
  /** Results that raise an alert (MEDIUM and above). */
  readonly alerts: ReadonlyArray<{ readonly result: DetectionResult; readonly source: KafkaRecord }>
  readonly audits: ReadonlyArray<{ readonly event: AuditEvent; readonly source: KafkaRecord }>
  readonly deadLetters: ReadonlyArray<{ readonly record: KafkaRecord; readonly kind: string; readonly message: string }>
  /** W3C trace context of the batch's span, kept on the outbox rows so the relay can continue the trace. */
  readonly traceparent?: string
  readonly tracestate?: string
}

export interface WriteSummary {
  /** Alerts this batch created. */
  readonly alertsCreated: number
  /** Alert records that were already stored (a replay) or repeated within the batch. */
  readonly duplicates: number
  /** Accounts this batch moved to BLOCKED. */
  readonly usersBlocked: number
  /** `audit-events` records this batch added to `system_audit_log` (alert and block rows not included). */
  readonly auditRows: number
  /** Dead letters this batch added. */
  readonly deadLetters: number
}

export interface AlertWriterService {
  readonly write: (batch: PgBatch) => Effect.Effect<WriteSummary, PostgresWriteError>
}

export class AlertWriter extends Context.Tag("sentinel/AlertWriter")<AlertWriter, AlertWriterService>() {}

export interface AlertWriterConfig {
  /** Severities whose alert blocks the user's account. Default `["CRITICAL"]`. */
  readonly autoBlockSeverities?: ReadonlyArray<Severity>
}

const uniqueBy = <A>(items: ReadonlyArray<A>, key: (item: A) => string): ReadonlyArray<A> => {
  const seen = new Map<string, A>()
  for (const item of items) {
    const k = key(item)
    if (!seen.has(k)) seen.set(k, item)
  }
  return [...seen.values()]
}

// PostgreSQL text cannot hold NUL and JSON cannot carry a lone surrogate; a dead letter must be storable
// whatever arrived, so those become U+FFFD there (its raw bytes are kept intact in `value`).
const unstorable = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g
const storable = (text: string): string => text.replace(unstorable, "\ufffd")

/** JSON with keys in a fixed order, so equal events hash equally whatever order their producer used. */
const canonicalJson = (value: unknown): string =>
  JSON.stringify(value, (_, v: unknown) =>
    v !== null && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v)

/**
 * An audit event's identity: its content when it says when it happened (a producer retry repeats the
 * same event), otherwise where it sits in Kafka (a replay repeats the same record).
 */
const auditEventKey = (event: AuditEvent, source: KafkaRecord): string =>
  event.timestamp === undefined
    ? `kafka:${source.topic}:${source.partition}:${source.offset}`
    : `audit:${createHash("sha256").update(canonicalJson(event)).digest("hex")}`

const alertRow = ({ result, source }: PgBatch["alerts"][number]) => ({
  alert_id: alertIdOf(result.transaction.transaction_id),
  transaction_id: result.transaction.transaction_id,
  user_id: result.transaction.user_id,
  severity: result.severity,
  fraud_score: result.fraud_score,
  is_fraud: result.is_fraud,
  amount: result.transaction.amount,
  merchant_category: result.transaction.merchant_category,
  payment_method: result.transaction.payment_method,
  device_info: result.transaction.device_info,
  location_country: result.transaction.location_country,
  location_state: result.transaction.location_state,
  rules_triggered: result.business_rules_triggered,
  ml_prediction: result.ml_prediction,
  ml_confidence: result.detection_metadata.ml_confidence,
  ml_model_version: result.detection_metadata.ml_model_version,
  explanation: result.explanation,
  transaction_time: result.transaction.timestamp,
  source_topic: source.topic,
  source_partition: source.partition,
  source_offset: source.offset,
  source_timestamp_ms: source.timestamp,
  correlation_id: result.correlation_id ?? source.headers["X-Correlation-ID"] ?? null
})

const auditRow = ({ event, source }: PgBatch["audits"][number]) => ({
  event_key: auditEventKey(event, source),
  event_type: event.event_type,
  entity_type: event.entity_type,
  entity_id: event.entity_id,
  action: event.action,
  actor_id: event.actor_id ?? null,
  details: event.details ?? {},
  // The contract's timestamps carry no zone; like ClickHouse, Sentinel reads them as UTC.
  occurred_at: event.timestamp === undefined ? null : `${event.timestamp}Z`,
  source_topic: source.topic,
  source_partition: source.partition,
  source_offset: source.offset,
  source_timestamp_ms: source.timestamp
})

const deadLetterRow = ({ kind, message, record }: PgBatch["deadLetters"][number]) => ({
  source_topic: record.topic,
  source_partition: record.partition,
  source_offset: record.offset,
  source_timestamp_ms: record.timestamp,
  key: record.key === null ? null : storable(record.key),
  headers: Object.fromEntries(Object.entries(record.headers).map(([name, value]) => [storable(name), storable(value)])),
  value: record.value === null ? null : record.value.toString("base64"),
  error_kind: storable(kind),
  error_message: storable(message)
})

/**
 * An alert's outbox payload, built in SQL from the columns of a `fraud_alerts` row: exactly the ClickHouse
 * `alerts` row less outbox_id, trace_id and relayed_at. `sentinel reconcile --repair` rebuilds a pruned
 * outbox row with it.
 */
export const outboxPayload = (sql: SqlClient.SqlClient) =>
  sql`jsonb_build_object(
        'alert_id', alert_id, 'transaction_id', transaction_id, 'user_id', user_id,
        'severity', severity, 'fraud_score', fraud_score, 'amount', amount,
        'rules_triggered', rules_triggered,
        'transaction_time', to_char(transaction_time, 'YYYY-MM-DD HH24:MI:SS.US'),
        'created_at', to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US'))`

export const make = (config: AlertWriterConfig = {}): Effect.Effect<AlertWriterService, never, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    // Column names below are the schema's own; a client configured to rename them must not.
    const sql = (yield* SqlClient.SqlClient).withoutTransforms()
    // The database, for the transaction's span, when the client says (a PgClient does).
    const databaseAttributes = {
      [ATTR_DB_SYSTEM_NAME]: DB_SYSTEM_NAME_VALUE_POSTGRESQL,
      ...Option.match(yield* Effect.serviceOption(PgClient.PgClient), {
        onNone: () => ({}),
        onSome: ({ config }) => ({ [ATTR_DB_NAMESPACE]: config.database ?? config.username ?? "postgres" })
      })
    }
    const autoBlockSeverities = [...(config.autoBlockSeverities ?? ["CRITICAL"])]

    const writeAlerts = (alerts: PgBatch["alerts"], traceparent: string | null, tracestate: string | null) =>
      sql<{ created: number; blocked: number }>`
        WITH input AS (
          SELECT * FROM json_to_recordset(${JSON.stringify(alerts.map(alertRow))}::json) AS r(
            alert_id uuid, transaction_id text, user_id text, severity text, fraud_score double precision,
            is_fraud boolean, amount numeric, merchant_category text, payment_method text, device_info text,
            location_country text, location_state text, rules_triggered text[], ml_prediction double precision,
            ml_confidence double precision, ml_model_version text, explanation jsonb, transaction_time timestamp,
            source_topic text, source_partition integer, source_offset bigint, source_timestamp_ms double precision,
            correlation_id text)
        ),
        created AS (
          INSERT INTO fraud_alerts (
            alert_id, transaction_id, user_id, severity, fraud_score, is_fraud, amount, merchant_category,
            payment_method, device_info, location_country, location_state, rules_triggered, ml_prediction,
            ml_confidence, ml_model_version, explanation, transaction_time, source_topic, source_partition,
            source_offset, source_timestamp, correlation_id)
          SELECT
            alert_id, transaction_id, user_id, severity, fraud_score, is_fraud, amount, merchant_category,
            payment_method, device_info, location_country, location_state, rules_triggered, ml_prediction,
            ml_confidence, ml_model_version, explanation, transaction_time, source_topic, source_partition,
            source_offset, to_timestamp(source_timestamp_ms / 1000), correlation_id
          FROM input
          ON CONFLICT (transaction_id) DO NOTHING
          RETURNING alert_id, transaction_id, user_id, severity, fraud_score, amount, rules_triggered,
                    transaction_time, created_at, source_topic, source_partition, source_offset
        ),
        -- A user's first (by transaction time) alert of a blocking severity in this batch, if any.
        blocking AS (
          SELECT DISTINCT ON (user_id) user_id, alert_id,
                 format('auto-blocked: %s alert %s on transaction %s', severity, alert_id, transaction_id) AS reason
          FROM created
          WHERE severity = ANY(${autoBlockSeverities}::text[])
          ORDER BY user_id, transaction_time, alert_id
        ),
        per_user AS (
          SELECT c.user_id,
                 count(*) AS alerts,
                 count(*) FILTER (WHERE c.severity = 'MEDIUM') AS medium,
                 count(*) FILTER (WHERE c.severity = 'HIGH') AS high,
                 count(*) FILTER (WHERE c.severity = 'CRITICAL') AS critical,
                 b.alert_id AS block_alert_id,
                 b.reason AS block_reason
          FROM created c LEFT JOIN blocking b USING (user_id)
          GROUP BY c.user_id, b.alert_id, b.reason
        ),
        accounts AS (
          INSERT INTO user_accounts AS a (
            user_id, status, alert_count, medium_count, high_count, critical_count, first_alert_at,
            last_alert_at, blocked_at, blocked_reason, blocked_by_alert_id)
          SELECT user_id, CASE WHEN block_alert_id IS NULL THEN 'ACTIVE' ELSE 'BLOCKED' END,
                 alerts, medium, high, critical, now(), now(),
                 CASE WHEN block_alert_id IS NOT NULL THEN now() END, block_reason, block_alert_id
          FROM per_user
          -- One lock order for every writer, so concurrent batches sharing users cannot deadlock.
          ORDER BY user_id
          ON CONFLICT (user_id) DO UPDATE SET
            alert_count = a.alert_count + excluded.alert_count,
            medium_count = a.medium_count + excluded.medium_count,
            high_count = a.high_count + excluded.high_count,
            critical_count = a.critical_count + excluded.critical_count,
            first_alert_at = coalesce(a.first_alert_at, excluded.first_alert_at),
            last_alert_at = excluded.last_alert_at,
            -- Blocking only ever tightens: nothing here moves an account out of BLOCKED.
            status = CASE WHEN excluded.blocked_by_alert_id IS NOT NULL THEN 'BLOCKED' ELSE a.status END,
            blocked_at = CASE WHEN excluded.blocked_by_alert_id IS NOT NULL AND a.status <> 'BLOCKED'
                              THEN excluded.blocked_at ELSE a.blocked_at END,
            blocked_reason = CASE WHEN excluded.blocked_by_alert_id IS NOT NULL AND a.status <> 'BLOCKED'
                                  THEN excluded.blocked_reason ELSE a.blocked_reason END,
            blocked_by_alert_id = CASE WHEN excluded.blocked_by_alert_id IS NOT NULL AND a.status <> 'BLOCKED'
                                       THEN excluded.blocked_by_alert_id ELSE a.blocked_by_alert_id END,
            updated_at = now()
          RETURNING user_id, blocked_by_alert_id
        ),
        -- Blocked by this batch: the account now names an alert that did not exist before this statement.
        blocked AS (
          SELECT p.user_id, p.block_alert_id AS alert_id, p.block_reason AS reason
          FROM accounts a JOIN per_user p ON p.user_id = a.user_id AND p.block_alert_id = a.blocked_by_alert_id
        ),
        audited AS (
          INSERT INTO system_audit_log (
            event_key, event_type, entity_type, entity_id, action, actor_id, details, occurred_at,
            source_topic, source_partition, source_offset)
          SELECT 'alert:' || alert_id || ':created', 'FRAUD_ALERT', 'fraud_alert', alert_id::text, 'ALERT_CREATED',
                 'sentinel',
                 jsonb_build_object('transaction_id', transaction_id, 'user_id', user_id, 'severity', severity,
                                    'fraud_score', fraud_score, 'rules_triggered', rules_triggered),
                 created_at, source_topic, source_partition, source_offset
          FROM created
          UNION ALL
          SELECT 'user:' || b.user_id || ':blocked:' || b.alert_id, 'USER_ACCOUNT', 'user_account', b.user_id,
                 'USER_BLOCKED', 'sentinel', jsonb_build_object('alert_id', b.alert_id, 'reason', b.reason),
                 c.created_at, c.source_topic, c.source_partition, c.source_offset
          FROM blocked b JOIN created c USING (alert_id)
          -- No conflict target: naming event_key would need SELECT on the log, which the writer role lacks.
          ON CONFLICT DO NOTHING
        ),
        outboxed AS (
          INSERT INTO outbox (alert_id, payload, traceparent, tracestate)
          SELECT alert_id, ${outboxPayload(sql)}, ${traceparent}, ${tracestate}
          FROM created
        )
        SELECT (SELECT count(*) FROM created)::int AS created, (SELECT count(*) FROM blocked)::int AS blocked`

    const writeAudits = (audits: ReadonlyArray<ReturnType<typeof auditRow>>) =>
      sql<{ inserted: number }>`
        WITH inserted AS (
          INSERT INTO system_audit_log (
            event_key, event_type, entity_type, entity_id, action, actor_id, details, occurred_at,
            source_topic, source_partition, source_offset)
          SELECT event_key, event_type, entity_type, entity_id, action, actor_id, details,
                 coalesce(occurred_at, to_timestamp(source_timestamp_ms / 1000)),
                 source_topic, source_partition, source_offset
          FROM json_to_recordset(${JSON.stringify(audits)}::json) AS r(
            event_key text, event_type text, entity_type text, entity_id text, action text, actor_id text,
            details jsonb, occurred_at timestamptz, source_topic text, source_partition integer,
            source_offset bigint, source_timestamp_ms double precision)
          ON CONFLICT DO NOTHING -- on event_key, the log's only key besides its serial id
          RETURNING 1
        )
        SELECT count(*)::int AS inserted FROM inserted`

    const writeDeadLetters = (deadLetters: PgBatch["deadLetters"]) =>
      sql<{ inserted: number }>`
        WITH inserted AS (
          INSERT INTO dead_letters (
            source_topic, source_partition, source_offset, source_timestamp, key, headers, value,
            error_kind, error_message)
          SELECT source_topic, source_partition, source_offset, to_timestamp(source_timestamp_ms / 1000), key,
                 headers, decode(value, 'base64'), error_kind, error_message
          FROM json_to_recordset(${JSON.stringify(deadLetters.map(deadLetterRow))}::json) AS r(
            source_topic text, source_partition integer, source_offset bigint, source_timestamp_ms double precision,
            key text, headers jsonb, value text, error_kind text, error_message text)
          ON CONFLICT (source_topic, source_partition, source_offset) DO NOTHING
          RETURNING 1
        )
        SELECT count(*)::int AS inserted FROM inserted`

    const write = (batch: PgBatch): Effect.Effect<WriteSummary, PostgresWriteError> => {
      // The same record twice in one batch counts once, as it would across batches.
      const alerts = uniqueBy(batch.alerts, ({ result }) => result.transaction.transaction_id)
      const audits = uniqueBy(batch.audits.map(auditRow), (row) => row.event_key)
      const deadLetters = uniqueBy(
        batch.deadLetters,
        ({ record }) => `${record.topic}:${record.partition}:${record.offset}`
      )
      if (alerts.length + audits.length + deadLetters.length === 0) {
        return Effect.succeed({ alertsCreated: 0, duplicates: 0, usersBlocked: 0, auditRows: 0, deadLetters: 0 })
      }
      return Effect.all({
        alerts: alerts.length === 0
          ? Effect.succeed([{ created: 0, blocked: 0 }])
          : writeAlerts(alerts, batch.traceparent ?? null, batch.tracestate ?? null),
        audits: audits.length === 0 ? Effect.succeed([{ inserted: 0 }]) : writeAudits(audits),
        deadLetters: deadLetters.length === 0 ? Effect.succeed([{ inserted: 0 }]) : writeDeadLetters(deadLetters)
      }).pipe(
        sql.withTransaction,
        Effect.map((written): WriteSummary => ({
          alertsCreated: written.alerts[0]!.created,
          duplicates: batch.alerts.length - written.alerts[0]!.created,
          usersBlocked: written.alerts[0]!.blocked,
          auditRows: written.audits[0]!.inserted,
          deadLetters: written.deadLetters[0]!.inserted
        })),
        Effect.mapError(postgresWriteError),
        Effect.tap((summary) =>
          Effect.annotateCurrentSpan({
            "sentinel.rows.fraud_alerts": summary.alertsCreated,
            "sentinel.rows.outbox": summary.alertsCreated,
            "sentinel.rows.system_audit_log": summary.auditRows,
            "sentinel.rows.dead_letters": summary.deadLetters,
            "sentinel.duplicates": summary.duplicates,
            "sentinel.users_blocked": summary.usersBlocked
          })
        ),
        Effect.withSpan("sentinel.postgres.transaction", {
          kind: "client",
          attributes: {
            ...databaseAttributes,
            [ATTR_DB_OPERATION_NAME]: "INSERT",
            [ATTR_DB_QUERY_SUMMARY]: `INSERT ${
              [
                ...(alerts.length === 0 ? [] : ["fraud_alerts", "user_accounts", "system_audit_log", "outbox"]),
                ...(audits.length === 0 || alerts.length > 0 ? [] : ["system_audit_log"]),
                ...(deadLetters.length === 0 ? [] : ["dead_letters"])
              ].join(" ")
            }`,
            "sentinel.alerts": alerts.length,
            "sentinel.audits": audits.length,
            "sentinel.dead_letters": deadLetters.length
          }
        })
      )
    }

    return { write }
  })

export const layer = (config: AlertWriterConfig = {}): Layer.Layer<AlertWriter, never, SqlClient.SqlClient> =>
  Layer.effect(AlertWriter, make(config))
