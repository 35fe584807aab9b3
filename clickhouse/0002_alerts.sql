-- Alerts as relayed from the PostgreSQL outbox (OutboxRelay). The relay tags each INSERT with a
-- token that depends only on the claimed outbox batch, so a retried batch is dropped here.
-- Columns and types are the relay's contract: do not change them; only the TTL is added.
-- Query: SELECT severity, count() FROM alerts WHERE transaction_time >= now() - INTERVAL 1 DAY
--        GROUP BY severity
CREATE TABLE IF NOT EXISTS alerts (
    alert_id UUID, transaction_id String, user_id String, severity LowCardinality(String),
    fraud_score Float64, amount Float64, rules_triggered Array(String),
    transaction_time DateTime64(6, 'UTC'), created_at DateTime64(6, 'UTC'),
    outbox_id UInt64, trace_id String, relayed_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = MergeTree PARTITION BY toYYYYMM(transaction_time) ORDER BY (transaction_id, alert_id)
TTL toDateTime(transaction_time) + INTERVAL {{analyticsTtlDays}} DAY
SETTINGS non_replicated_deduplication_window = 100000, ttl_only_drop_parts = 1;
