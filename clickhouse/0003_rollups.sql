-- Rollups kept by materialized views. Each view reads only the block being inserted into its source
-- table, so it is exactly as right as its source: the writer never inserts an identity twice, and a
-- retried INSERT (same insert_deduplication_token, inserted with
-- deduplicate_blocks_in_dependent_materialized_views = 1) is dropped in the views as well.
-- Several views feed one table, each adding only its own columns (the others take their defaults).
-- Rows are combined by background merges at an unknown time: always read with sum()/max() and
-- GROUP BY, never a bare SELECT and never relying on FINAL. Qualify the columns in those reads
-- (r.flagged): an alias such as `sum(flagged) AS flagged` would otherwise be what a later
-- `sum(flagged)` refers to.

-- Per hour of transaction time: transactions, those the detector flagged (is_fraud), alerts
-- (detections of severity MEDIUM or above) and the sum of fraud scores for the average.
-- Query:
--   SELECT r.hour AS hour,
--          sum(r.transactions) AS transactions,
--          sum(r.flagged) AS flagged,
--          sum(r.alerts) AS alerts,
--          sum(r.flagged) / sum(r.transactions) AS fraud_rate,
--          sum(r.fraud_score_sum) / sum(r.transactions) AS avg_fraud_score
--   FROM fraud_rate_hourly AS r
--   WHERE r.hour >= now() - INTERVAL 1 DAY
--   GROUP BY hour ORDER BY hour
CREATE TABLE IF NOT EXISTS fraud_rate_hourly (
    hour            DateTime('UTC') CODEC(DoubleDelta, ZSTD(1)),
    transactions    UInt64,
    flagged         UInt64,
    alerts          UInt64,
    fraud_score_sum Float64
)
ENGINE = SummingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY hour
TTL hour + INTERVAL {{analyticsTtlDays}} DAY
SETTINGS non_replicated_deduplication_window = 100000, ttl_only_drop_parts = 1;

-- Transactions come from transaction_records (every detection writes one there too, and
-- `transaction-records` adds those without a detection), so each transaction counts once.
CREATE MATERIALIZED VIEW IF NOT EXISTS fraud_rate_hourly_transactions_mv TO fraud_rate_hourly AS
SELECT
    toStartOfHour(t.transaction_time) AS hour,
    count()                           AS transactions,
    countIf(t.is_fraud)               AS flagged,
    sum(t.fraud_score)                AS fraud_score_sum
FROM transaction_records AS t
GROUP BY hour;

CREATE MATERIALIZED VIEW IF NOT EXISTS fraud_rate_hourly_alerts_mv TO fraud_rate_hourly AS
SELECT
    toStartOfHour(d.transaction_time)                     AS hour,
    countIf(d.severity IN ('MEDIUM', 'HIGH', 'CRITICAL')) AS alerts
FROM detection_results AS d
GROUP BY hour;

-- Per user per day (UTC) of transaction time: transactions, amount, highest fraud score, alerts.
-- Query:
--   SELECT u.day AS day,
--          sum(u.transactions) AS transactions,
--          sum(u.amount_sum) AS amount,
--          max(u.max_fraud_score) AS max_fraud_score,
--          sum(u.alerts) AS alerts
--   FROM user_activity_daily AS u
--   WHERE u.user_id = {user_id:String} AND u.day >= today() - 30
--   GROUP BY day ORDER BY day
CREATE TABLE IF NOT EXISTS user_activity_daily (
    user_id         String CODEC(ZSTD(1)),
    day             Date CODEC(Delta, ZSTD(1)),
    transactions    SimpleAggregateFunction(sum, UInt64),
    amount_sum      SimpleAggregateFunction(sum, Float64),
    max_fraud_score SimpleAggregateFunction(max, Float64),
    alerts          SimpleAggregateFunction(sum, UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (user_id, day)
TTL day + INTERVAL {{analyticsTtlDays}} DAY
SETTINGS non_replicated_deduplication_window = 100000, ttl_only_drop_parts = 1;

CREATE MATERIALIZED VIEW IF NOT EXISTS user_activity_daily_transactions_mv TO user_activity_daily AS
SELECT
    t.user_id                  AS user_id,
    toDate(t.transaction_time) AS day,
    count()                    AS transactions,
    sum(t.amount)              AS amount_sum,
    max(t.fraud_score)         AS max_fraud_score
FROM transaction_records AS t
GROUP BY user_id, day;

CREATE MATERIALIZED VIEW IF NOT EXISTS user_activity_daily_alerts_mv TO user_activity_daily AS
SELECT
    d.user_id                                             AS user_id,
    toDate(d.transaction_time)                            AS day,
    countIf(d.severity IN ('MEDIUM', 'HIGH', 'CRITICAL')) AS alerts
FROM detection_results AS d
GROUP BY user_id, day;
