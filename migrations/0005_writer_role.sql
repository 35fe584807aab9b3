-- The daemon's least-privilege role. It cannot log in: the daemon's login role is granted it and every
-- session starts as it (see src/sinks/postgres/WriterRole.ts).
-- Roles are cluster-wide while migrations run per database, possibly several at once: a concurrent
-- creator shows up as duplicate_object, or as unique_violation while its transaction is in flight.
DO $$
BEGIN
  CREATE ROLE sentinel_writer NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
  NULL;
END
$$;

GRANT SELECT, INSERT ON fraud_alerts TO sentinel_writer;
GRANT SELECT, INSERT, UPDATE ON user_accounts TO sentinel_writer;
GRANT INSERT ON system_audit_log TO sentinel_writer;
GRANT SELECT, INSERT, UPDATE, DELETE ON outbox TO sentinel_writer;
GRANT SELECT, INSERT ON dead_letters TO sentinel_writer;
GRANT USAGE ON SEQUENCE system_audit_log_id_seq, outbox_id_seq, dead_letters_id_seq TO sentinel_writer;
