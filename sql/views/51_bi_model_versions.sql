-- Repeatable: dropped and re-created by every `crimejob db upgrade`. Edit this file to change
-- the view. Names and columns are the contract BI tools rely on; new columns go at the end.

CREATE VIEW bi.model_versions AS
SELECT v.model_name, v.version, v.parent_version, v.mode, v.data_through, v.trained_through,
       v.train_first_target, v.train_weeks, v.last_retrain_week,
       (v.hyperparameters ->> 'horizon')::integer AS horizon_weeks,
       (v.validation ->> 'poisson_deviance')::float8 AS validation_poisson_deviance,
       (v.validation ->> 'pei_5pct')::float8 AS validation_pei_5pct,
       v.promoted, v.promoted_at, v.created_at,
       p.version IS NOT NULL AS is_newest_promoted,
       c.generated_at AS card_generated_at,
       v.hyperparameters::text AS hyperparameters
FROM ml.model_versions AS v
LEFT JOIN ml.production_versions AS p USING (model_name, version)
LEFT JOIN ml.model_cards AS c
       ON c.model_name = v.model_name AND c.model_version = v.version::text;
COMMENT ON VIEW bi.model_versions IS 'Every trained model version: what it was trained on, how it validated, whether it was promoted. Why each was or was not promoted: bi.promotion_decisions.';
COMMENT ON COLUMN bi.model_versions.model_name IS 'Network name (rate_cnn, seed_cnn, ...).';
COMMENT ON COLUMN bi.model_versions.version IS 'Version number, 1 = the first trained.';
COMMENT ON COLUMN bi.model_versions.parent_version IS 'The version a fine-tune started from (NULL for a retrain from scratch).';
COMMENT ON COLUMN bi.model_versions.mode IS 'retrain (fresh weights) or finetune (from the parent).';
COMMENT ON COLUMN bi.model_versions.data_through IS 'The week it was trained for: no data after it was read.';
COMMENT ON COLUMN bi.model_versions.trained_through IS 'Newest target week whose counts the weights were fitted to.';
COMMENT ON COLUMN bi.model_versions.train_first_target IS 'Oldest target week of the training window.';
COMMENT ON COLUMN bi.model_versions.train_weeks IS 'Target weeks in the training window.';
COMMENT ON COLUMN bi.model_versions.last_retrain_week IS 'data_through of the retrain this lineage of fine-tunes started from.';
COMMENT ON COLUMN bi.model_versions.horizon_weeks IS 'How many weeks ahead it forecasts (the publication lag).';
COMMENT ON COLUMN bi.model_versions.validation_poisson_deviance IS 'Mean Poisson deviance on its validation weeks (never trained on).';
COMMENT ON COLUMN bi.model_versions.validation_pei_5pct IS 'Mean PEI at 5% on its validation weeks.';
COMMENT ON COLUMN bi.model_versions.promoted IS 'True if the gate promoted it.';
COMMENT ON COLUMN bi.model_versions.promoted_at IS 'When it was promoted.';
COMMENT ON COLUMN bi.model_versions.created_at IS 'When it was trained and registered.';
COMMENT ON COLUMN bi.model_versions.is_newest_promoted IS 'True for the newest promoted version of its model: the one the weekly forecast loads.';
COMMENT ON COLUMN bi.model_versions.card_generated_at IS 'When its model card (bi.model_cards) was last generated; NULL: no card.';
COMMENT ON COLUMN bi.model_versions.hyperparameters IS 'Every hyperparameter it was trained with (JSON text).';
