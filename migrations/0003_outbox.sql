-- Alerts waiting for the relay to copy them into ClickHouse `alerts`.

CREATE TABLE outbox (
  id               bigserial PRIMARY KEY,
  -- One outbox row per alert, ever. No foreign key: the alert and its outbox row are written by the same
  -- statement, and a per-row key check would cost the writer more than a tenth of its time.
  alert_id         uuid NOT NULL UNIQUE,
  -- Exactly the ClickHouse `alerts` row, less outbox_id, trace_id and relayed_at which the relay adds.
  payload          jsonb NOT NULL,
  -- W3C trace context of the batch that wrote the alert.
  traceparent      text,
  tracestate       text,
  created_at       timestamptz NOT NULL DEFAULT now(),
  -- A claim is a fixed set of rows: a relay that takes over an expired claim re-sends exactly it.
  claim_id         uuid,
  claimed_at       timestamptz,
  claim_expires_at timestamptz,
  claim_attempts   integer NOT NULL DEFAULT 0,
  published_at     timestamptz,
  CHECK ((claim_id IS NULL) = (claim_expires_at IS NULL))
);

-- Pending rows in id order: new work for the claim, and the backlog.
CREATE INDEX outbox_pending_idx ON outbox (id) WHERE published_at IS NULL;
-- Claims in flight: finding an expired one, taking over and marking its rows.
CREATE INDEX outbox_claimed_idx ON outbox (claim_id, id) WHERE published_at IS NULL AND claim_id IS NOT NULL;
-- Pruning.
CREATE INDEX outbox_published_idx ON outbox (published_at) WHERE published_at IS NOT NULL;
