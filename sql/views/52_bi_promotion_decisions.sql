-- Repeatable: dropped and re-created by every `crimejob db upgrade`. Edit this file to change
-- the view. Names and columns are the contract BI tools rely on; new columns go at the end.

CREATE VIEW bi.promotion_decisions AS
SELECT d.decision_id, d.decided_at, d.model_name, d.version, d.promoted, d.reason, d.metric,
       cardinality(d.gate_weeks) AS gate_weeks, d.gate_weeks[1] AS first_gate_week,
       d.gate_weeks[cardinality(d.gate_weeks)] AS last_gate_week,
       d.candidate_score, d.production_version, d.production_score,
       d.baseline_name, d.baseline_score,
       d.candidate_score - d.baseline_score AS margin_vs_baseline,
       d.candidate_score - d.production_score AS margin_vs_production,
       d.details::text AS details
FROM ml.promotion_decisions AS d;
COMMENT ON VIEW bi.promotion_decisions IS 'Every gate decision with its numbers: why production is what it is. A candidate is promoted only if it beats the production version and the best baseline on weeks neither was trained on.';
COMMENT ON COLUMN bi.promotion_decisions.decision_id IS 'Decision number, in order.';
COMMENT ON COLUMN bi.promotion_decisions.decided_at IS 'When the gate decided.';
COMMENT ON COLUMN bi.promotion_decisions.model_name IS 'Candidate model.';
COMMENT ON COLUMN bi.promotion_decisions.version IS 'Candidate version (bi.model_versions).';
COMMENT ON COLUMN bi.promotion_decisions.promoted IS 'True if it was promoted.';
COMMENT ON COLUMN bi.promotion_decisions.reason IS 'The decision in words, with the scores it compared.';
COMMENT ON COLUMN bi.promotion_decisions.metric IS 'The gate metric (lower is better), e.g. poisson_deviance.';
COMMENT ON COLUMN bi.promotion_decisions.gate_weeks IS 'How many validation weeks the decision was made on.';
COMMENT ON COLUMN bi.promotion_decisions.first_gate_week IS 'First gate week.';
COMMENT ON COLUMN bi.promotion_decisions.last_gate_week IS 'Last gate week.';
COMMENT ON COLUMN bi.promotion_decisions.candidate_score IS 'Candidate''s mean gate metric on the gate weeks.';
COMMENT ON COLUMN bi.promotion_decisions.production_version IS 'The production version it was compared with (NULL: none yet).';
COMMENT ON COLUMN bi.promotion_decisions.production_score IS 'Production version''s mean gate metric on the same weeks.';
COMMENT ON COLUMN bi.promotion_decisions.baseline_name IS 'The best baseline on the gate weeks.';
COMMENT ON COLUMN bi.promotion_decisions.baseline_score IS 'That baseline''s mean gate metric on the same weeks.';
COMMENT ON COLUMN bi.promotion_decisions.margin_vs_baseline IS 'candidate_score - baseline_score (negative: the candidate is better).';
COMMENT ON COLUMN bi.promotion_decisions.margin_vs_production IS 'candidate_score - production_score (negative: the candidate is better).';
COMMENT ON COLUMN bi.promotion_decisions.details IS 'Every contender''s mean metrics on the gate weeks (JSON text).';
