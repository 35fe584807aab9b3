-- Append-only audit trail: alerts created, users blocked, and the `audit-events` topic.

CREATE TABLE system_audit_log (
  id               bigserial PRIMARY KEY,
  -- Deterministic identity, so a replay or a producer retry never adds a second row:
  -- alert:<alert_id>:created, user:<user_id>:blocked:<alert_id>, audit:<sha256 of the event>,
  -- or kafka:<topic>:<partition>:<offset> for an event without a timestamp.
  event_key        text NOT NULL UNIQUE,
  event_type       text NOT NULL,
  entity_type      text NOT NULL,
  entity_id        text NOT NULL,
  action           text NOT NULL,
  actor_id         text,
  details          jsonb NOT NULL DEFAULT '{}'::jsonb,
  occurred_at      timestamptz NOT NULL,
  source_topic     text,
  source_partition integer,
  source_offset    bigint,
  recorded_at      timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX system_audit_log_entity_idx ON system_audit_log (entity_type, entity_id, occurred_at);

-- Grants keep the daemon from rewriting history; this keeps everyone else from doing it by accident.
CREATE FUNCTION system_audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'system_audit_log is append-only (% refused)', TG_OP USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER system_audit_log_no_update_delete
  BEFORE UPDATE OR DELETE ON system_audit_log
  FOR EACH ROW EXECUTE FUNCTION system_audit_log_append_only();

CREATE TRIGGER system_audit_log_no_truncate
  BEFORE TRUNCATE ON system_audit_log
  FOR EACH STATEMENT EXECUTE FUNCTION system_audit_log_append_only();
