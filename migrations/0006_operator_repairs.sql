-- What the operator's repair commands need (sentinel dlq replay, sentinel reconcile).

-- A dead letter re-published by `sentinel dlq replay`: when last, and how many times. The record stays
-- as it arrived; a replay that fails again becomes a dead letter of its own (a new offset).
ALTER TABLE dead_letters
  ADD COLUMN replayed_at  timestamptz,
  ADD COLUMN replay_count integer NOT NULL DEFAULT 0;

-- The operator commands run as the daemon's role, as the daemon does: of a dead letter they may change
-- only its replay marks.
GRANT UPDATE (replayed_at, replay_count) ON dead_letters TO sentinel_writer;

-- `sentinel reconcile` reads alerts one hour of created_at at a time.
CREATE INDEX fraud_alerts_created_idx ON fraud_alerts (created_at);
