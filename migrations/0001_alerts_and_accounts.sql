-- Fraud alerts (MEDIUM, HIGH and CRITICAL results) and the accounts of the users they concern.

CREATE TABLE fraud_alerts (
  -- UUID v5 of the transaction id (computed by Sentinel), so a replayed result maps to the same alert.
  alert_id          uuid PRIMARY KEY,
  transaction_id    text NOT NULL UNIQUE,
  user_id           text NOT NULL,
  severity          text NOT NULL CHECK (severity IN ('MINIMAL', 'LOW', 'MEDIUM', 'HIGH', 'CRITICAL')),
  fraud_score       double precision NOT NULL CHECK (fraud_score BETWEEN 0 AND 1),
  is_fraud          boolean NOT NULL,
  amount            numeric NOT NULL,
  merchant_category text NOT NULL,
  payment_method    text NOT NULL,
  device_info       text NOT NULL,
  location_country  text NOT NULL,
  location_state    text NOT NULL,
  rules_triggered   text[] NOT NULL,
  ml_prediction     double precision,
  ml_confidence     double precision,
  ml_model_version  text,
  explanation       jsonb NOT NULL,
  -- The producer's local time, as sent: it carries no zone, so none is invented here.
  transaction_time  timestamp NOT NULL,
  source_topic      text NOT NULL,
  source_partition  integer NOT NULL,
  source_offset     bigint NOT NULL,
  source_timestamp  timestamptz NOT NULL,
  correlation_id    text,
  status            text NOT NULL DEFAULT 'OPEN'
                    CHECK (status IN ('OPEN', 'INVESTIGATING', 'CONFIRMED_FRAUD', 'FALSE_POSITIVE', 'RESOLVED')),
  created_at        timestamptz NOT NULL DEFAULT now(),
  updated_at        timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX fraud_alerts_user_idx ON fraud_alerts (user_id, created_at DESC);
CREATE INDEX fraud_alerts_open_idx ON fraud_alerts (created_at) WHERE status IN ('OPEN', 'INVESTIGATING');

-- The lifecycle: OPEN -> INVESTIGATING -> CONFIRMED_FRAUD | FALSE_POSITIVE | RESOLVED, and a verdict is final.
CREATE FUNCTION fraud_alerts_status_transition() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.status IS DISTINCT FROM OLD.status AND NOT (
       (OLD.status = 'OPEN' AND NEW.status = 'INVESTIGATING')
    OR (OLD.status = 'INVESTIGATING' AND NEW.status IN ('CONFIRMED_FRAUD', 'FALSE_POSITIVE', 'RESOLVED'))
  ) THEN
    RAISE EXCEPTION 'fraud alert % cannot go from % to %', OLD.alert_id, OLD.status, NEW.status
      USING ERRCODE = 'check_violation';
  END IF;
  NEW.updated_at := now();
  RETURN NEW;
END
$$;

CREATE TRIGGER fraud_alerts_status_transition
  BEFORE UPDATE ON fraud_alerts
  FOR EACH ROW EXECUTE FUNCTION fraud_alerts_status_transition();

CREATE TABLE user_accounts (
  user_id             text PRIMARY KEY,
  status              text NOT NULL DEFAULT 'ACTIVE' CHECK (status IN ('ACTIVE', 'SUSPENDED', 'BLOCKED')),
  -- Counted once per alert ever created, never per message received.
  alert_count         integer NOT NULL DEFAULT 0,
  medium_count        integer NOT NULL DEFAULT 0,
  high_count          integer NOT NULL DEFAULT 0,
  critical_count      integer NOT NULL DEFAULT 0,
  first_alert_at      timestamptz,
  last_alert_at       timestamptz,
  blocked_at          timestamptz,
  blocked_reason      text,
  -- The alert that blocked the account: it also tells the writer which blocks are its own.
  blocked_by_alert_id uuid REFERENCES fraud_alerts (alert_id),
  created_at          timestamptz NOT NULL DEFAULT now(),
  updated_at          timestamptz NOT NULL DEFAULT now(),
  CHECK (status <> 'BLOCKED' OR blocked_at IS NOT NULL)
);
