-- Records that could not be stored where they belong, with the reason, as they arrived.

CREATE TABLE dead_letters (
  id               bigserial PRIMARY KEY,
  source_topic     text NOT NULL,
  source_partition integer NOT NULL,
  source_offset    bigint NOT NULL,
  source_timestamp timestamptz NOT NULL,
  key              text,
  headers          jsonb NOT NULL DEFAULT '{}'::jsonb,
  value            bytea,
  error_kind       text NOT NULL,
  error_message    text NOT NULL,
  received_at      timestamptz NOT NULL DEFAULT now(),
  -- A replayed record is the same dead letter.
  UNIQUE (source_topic, source_partition, source_offset)
);

CREATE INDEX dead_letters_received_idx ON dead_letters (received_at);
