-- Analytics tables fed by the AnalyticsWriter: one row per transaction, per detection result, per
-- feature of a result and per performance metric. Every row names the Kafka record it came from.
--
-- Exactly once: the writer filters out identities already present before it inserts (a
-- transaction_id, or a metric's (metric_name, instance_id, component, metric_time)) and tags every
-- INSERT with an insert_deduplication_token derived from those identities, so `count()` is exact
-- without FINAL. non_replicated_deduplication_window keeps the last N block tokens per table so a
-- retried INSERT is dropped here and, with deduplicate_blocks_in_dependent_materialized_views = 1,
-- in every view below it.
--
-- Placeholders: {{analyticsTtlDays}} and {{metricsTtlDays}} are validated positive integers,
-- substituted by Migrations.ts (DDL cannot bind parameters). TTL goes through toDateTime() because
-- servers before 24.x reject a TTL on a DateTime64 expression; ttl_only_drop_parts makes expiry a
-- cheap whole-part drop instead of a rewrite.

-- One row per transaction, whether it came inside a detection result or on `transaction-records`.
-- ORDER BY transaction_id makes the writer's identity lookup (every batch) a primary-key lookup.
-- The detector's ids grow with time (T0000048213), so a batch of new ids touches about one granule
-- per part; a bloom filter on transaction_id would cost more CPU at insert than it saves there (if
-- ids ever become random, add one). Time and user queries use the monthly partitions, the minmax
-- index and the user bloom filter.
CREATE TABLE IF NOT EXISTS transaction_records (
    transaction_id    String CODEC(ZSTD(1)),
    user_id           String CODEC(ZSTD(1)),
    transaction_time  DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    amount            Float64 CODEC(ZSTD(1)),
    merchant_category LowCardinality(String),
    payment_method    LowCardinality(String),
    device_info       LowCardinality(String),
    location_country  LowCardinality(String),
    location_state    LowCardinality(String),
    is_fraud          Bool,
    fraud_score       Float64 CODEC(ZSTD(1)),
    processing_time_ms Float64 CODEC(ZSTD(1)),
    kafka_topic       LowCardinality(String),
    kafka_partition   UInt16,
    kafka_offset      UInt64 CODEC(Delta, ZSTD(1)),
    kafka_timestamp   DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    INDEX idx_user_id user_id TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_transaction_time transaction_time TYPE minmax GRANULARITY 4
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(transaction_time)
ORDER BY transaction_id
TTL toDateTime(transaction_time) + INTERVAL {{analyticsTtlDays}} DAY
SETTINGS non_replicated_deduplication_window = 100000, ttl_only_drop_parts = 1;

-- One row per detection result, of every severity. `features` holds the numeric and boolean
-- features (booleans as 0/1); the string ones (user_id, transaction_id) are columns already.
-- `label_is_fraud` is ground truth known when the row was written (a labelled backfill); Sentinel
-- writes NULL, and labels that arrive later go to ground_truth_labels (see 0003).
CREATE TABLE IF NOT EXISTS detection_results (
    transaction_id        String CODEC(ZSTD(1)),
    user_id               String CODEC(ZSTD(1)),
    transaction_time      DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    severity              LowCardinality(String),
    fraud_score           Float64 CODEC(ZSTD(1)),
    is_fraud              Bool,
    ml_prediction         Nullable(Float64) CODEC(ZSTD(1)),
    ml_model_version      LowCardinality(Nullable(String)),
    ml_confidence         Nullable(Float64) CODEC(ZSTD(1)),
    business_rules_score  Nullable(Float64) CODEC(ZSTD(1)),
    rules_triggered       Array(LowCardinality(String)),
    processing_time_ms    Float64 CODEC(ZSTD(1)),
    amount_vs_avg_ratio   Float64 CODEC(ZSTD(1)),
    velocity_score        Float64 CODEC(ZSTD(1)),
    is_high_amount        Bool,
    is_unusual_hour       Bool,
    is_rapid_transaction  Bool,
    daily_transaction_count UInt32 CODEC(T64, ZSTD(1)),
    features              Map(LowCardinality(String), Float64) CODEC(ZSTD(1)),
    correlation_id        String CODEC(ZSTD(1)),
    label_is_fraud        Nullable(UInt8) DEFAULT NULL,
    kafka_topic           LowCardinality(String),
    kafka_partition       UInt16,
    kafka_offset          UInt64 CODEC(Delta, ZSTD(1)),
    kafka_timestamp       DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    INDEX idx_user_id user_id TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_transaction_time transaction_time TYPE minmax GRANULARITY 4
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(transaction_time)
ORDER BY transaction_id
TTL toDateTime(transaction_time) + INTERVAL {{analyticsTtlDays}} DAY
SETTINGS non_replicated_deduplication_window = 100000, ttl_only_drop_parts = 1;

-- One row per numeric or boolean feature of a detection result (~14 per result). Filled only by
-- fraud_features_mv below, inside ClickHouse, so these rows never cross the wire. Ordered for
-- "one feature over time" queries.
CREATE TABLE IF NOT EXISTS fraud_features (
    transaction_id   String CODEC(ZSTD(1)),
    user_id          String CODEC(ZSTD(1)),
    transaction_time DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    feature_name     LowCardinality(String),
    feature_value    Float64 CODEC(ZSTD(1)),
    kafka_topic      LowCardinality(String),
    kafka_partition  UInt16,
    kafka_offset     UInt64 CODEC(Delta, ZSTD(1)),
    kafka_timestamp  DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1))
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(transaction_time)
ORDER BY (feature_name, transaction_time, transaction_id)
TTL toDateTime(transaction_time) + INTERVAL {{analyticsTtlDays}} DAY
SETTINGS non_replicated_deduplication_window = 100000, ttl_only_drop_parts = 1;

-- Each block inserted into detection_results becomes one block here (same partition month), so a
-- token-deduplicated retry of the source block is dropped here too.
-- Query: SELECT feature_name, avg(feature_value) FROM fraud_features
--        WHERE transaction_time >= now() - INTERVAL 1 DAY GROUP BY feature_name
CREATE MATERIALIZED VIEW IF NOT EXISTS fraud_features_mv TO fraud_features AS
SELECT
    d.transaction_id   AS transaction_id,
    d.user_id          AS user_id,
    d.transaction_time AS transaction_time,
    feature_name,
    feature_value,
    d.kafka_topic      AS kafka_topic,
    d.kafka_partition  AS kafka_partition,
    d.kafka_offset     AS kafka_offset,
    d.kafka_timestamp  AS kafka_timestamp
FROM detection_results AS d
ARRAY JOIN mapKeys(d.features) AS feature_name, mapValues(d.features) AS feature_value;

-- One row per metric sample; its identity is (metric_name, instance_id, component, metric_time),
-- which is also the sort key, so the writer's identity lookup is a primary-key lookup.
CREATE TABLE IF NOT EXISTS performance_metrics (
    metric_time     DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    metric_name     LowCardinality(String),
    metric_value    Float64 CODEC(Gorilla, ZSTD(1)),
    component       LowCardinality(String),
    instance_id     LowCardinality(String),
    labels          Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    kafka_topic     LowCardinality(String),
    kafka_partition UInt16,
    kafka_offset    UInt64 CODEC(Delta, ZSTD(1)),
    kafka_timestamp DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1))
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(metric_time)
ORDER BY (metric_name, instance_id, component, metric_time)
TTL toDateTime(metric_time) + INTERVAL {{metricsTtlDays}} DAY
SETTINGS non_replicated_deduplication_window = 100000, ttl_only_drop_parts = 1;
