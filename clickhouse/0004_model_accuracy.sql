-- Model accuracy per hour of transaction time and model version, against ground truth.
--
-- The prediction is the detector's decision `is_fraud` (what Sentinel acts on); the model version
-- is detection_metadata.ml_model_version, '' when the detector ran rules only.
--
-- Ground truth comes from two places, and each detection counts at most once:
--   * detection_results.label_is_fraud, when a row was written already labelled (a backfill).
--     These are counted at insert time by model_predictions_hourly_mv, like every other rollup.
--   * ground_truth_labels, for labels that arrive later (chargebacks, investigations): a plain
--     INSERT INTO ground_truth_labels (transaction_id, label_is_fraud, label_source) VALUES (...); the
--     latest labeled_at wins, so a corrected or re-sent label never counts twice. They apply only to
--     detections written without a label, and are joined when model_accuracy_hourly is read —
--     a counter bumped at label time could not be made replay-safe, and labels are few, so the
--     join reads only the labelled detections (through the detection_results primary key).

CREATE TABLE IF NOT EXISTS ground_truth_labels (
    transaction_id String CODEC(ZSTD(1)),
    label_is_fraud UInt8,
    labeled_at     DateTime64(3, 'UTC') DEFAULT now64(3),
    label_source   LowCardinality(String) DEFAULT ''
)
ENGINE = ReplacingMergeTree(labeled_at)
ORDER BY transaction_id
TTL toDateTime(labeled_at) + INTERVAL {{analyticsTtlDays}} DAY
SETTINGS non_replicated_deduplication_window = 100000;

-- Per hour and model version: every prediction, plus the confusion counts of detections that were
-- written already labelled. Read it through model_accuracy_hourly.
CREATE TABLE IF NOT EXISTS model_predictions_hourly (
    hour              DateTime('UTC') CODEC(DoubleDelta, ZSTD(1)),
    model_version     LowCardinality(String),
    predictions       UInt64,
    predicted_fraud   UInt64,
    ml_predictions    UInt64,
    ml_prediction_sum Float64,
    labeled           UInt64,
    true_positives    UInt64,
    false_positives   UInt64,
    true_negatives    UInt64,
    false_negatives   UInt64
)
ENGINE = SummingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (hour, model_version)
TTL hour + INTERVAL {{analyticsTtlDays}} DAY
SETTINGS non_replicated_deduplication_window = 100000, ttl_only_drop_parts = 1;

CREATE MATERIALIZED VIEW IF NOT EXISTS model_predictions_hourly_mv TO model_predictions_hourly AS
SELECT
    toStartOfHour(d.transaction_time)                        AS hour,
    ifNull(d.ml_model_version, '')                           AS model_version,
    count()                                                  AS predictions,
    countIf(d.is_fraud)                                      AS predicted_fraud,
    count(d.ml_prediction)                                   AS ml_predictions,
    sum(ifNull(d.ml_prediction, 0))                          AS ml_prediction_sum,
    countIf(d.label_is_fraud IS NOT NULL)                    AS labeled,
    countIf(d.is_fraud AND d.label_is_fraud = 1)             AS true_positives,
    countIf(d.is_fraud AND d.label_is_fraud = 0)             AS false_positives,
    countIf(NOT d.is_fraud AND d.label_is_fraud = 0)         AS true_negatives,
    countIf(NOT d.is_fraud AND d.label_is_fraud = 1)         AS false_negatives
FROM detection_results AS d
GROUP BY hour, model_version;

-- A plain view: one row per hour and model version, already summed.
-- Query:
--   SELECT m.hour, m.model_version, m.predictions, m.labeled,
--          m.true_positives, m.false_positives, m.true_negatives, m.false_negatives,
--          (m.true_positives + m.true_negatives) / nullIf(m.labeled, 0) AS accuracy,
--          m.true_positives / nullIf(m.true_positives + m.false_positives, 0) AS precision,
--          m.true_positives / nullIf(m.true_positives + m.false_negatives, 0) AS recall
--   FROM model_accuracy_hourly AS m
--   WHERE m.hour >= now() - INTERVAL 7 DAY
--   ORDER BY m.hour, m.model_version
CREATE VIEW IF NOT EXISTS model_accuracy_hourly AS
SELECT
    a.hour                                                  AS hour,
    a.model_version                                         AS model_version,
    sum(a.predictions)                                      AS predictions,
    sum(a.predicted_fraud)                                  AS predicted_fraud,
    sum(a.ml_prediction_sum) / nullIf(sum(a.ml_predictions), 0) AS avg_ml_prediction,
    sum(a.labeled)                                          AS labeled,
    sum(a.true_positives)                                   AS true_positives,
    sum(a.false_positives)                                  AS false_positives,
    sum(a.true_negatives)                                   AS true_negatives,
    sum(a.false_negatives)                                  AS false_negatives
FROM
(
    SELECT
        p.hour              AS hour,
        p.model_version     AS model_version,
        p.predictions       AS predictions,
        p.predicted_fraud   AS predicted_fraud,
        p.ml_predictions    AS ml_predictions,
        p.ml_prediction_sum AS ml_prediction_sum,
        p.labeled           AS labeled,
        p.true_positives    AS true_positives,
        p.false_positives   AS false_positives,
        p.true_negatives    AS true_negatives,
        p.false_negatives   AS false_negatives
    FROM model_predictions_hourly AS p
    UNION ALL
    SELECT
        toStartOfHour(d.transaction_time)                         AS hour,
        ifNull(d.ml_model_version, '')                            AS model_version,
        toUInt64(0)                                               AS predictions,
        toUInt64(0)                                               AS predicted_fraud,
        toUInt64(0)                                               AS ml_predictions,
        toFloat64(0)                                              AS ml_prediction_sum,
        toUInt64(1)                                               AS labeled,
        toUInt64(d.is_fraud AND l.label_is_fraud = 1)             AS true_positives,
        toUInt64(d.is_fraud AND l.label_is_fraud = 0)             AS false_positives,
        toUInt64(NOT d.is_fraud AND l.label_is_fraud = 0)         AS true_negatives,
        toUInt64(NOT d.is_fraud AND l.label_is_fraud = 1)         AS false_negatives
    FROM detection_results AS d
    INNER JOIN
    (
        SELECT g.transaction_id AS transaction_id, argMax(g.label_is_fraud, g.labeled_at) AS label_is_fraud
        FROM ground_truth_labels AS g
        GROUP BY g.transaction_id
    ) AS l ON l.transaction_id = d.transaction_id
    WHERE d.label_is_fraud IS NULL
      AND d.transaction_id IN (SELECT g2.transaction_id FROM ground_truth_labels AS g2)
) AS a
GROUP BY a.hour, a.model_version;
