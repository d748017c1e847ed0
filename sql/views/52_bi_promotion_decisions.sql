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
       d.details::text AS details,
       d.kind, d.target_week, d.history_through, d.horizon_weeks,
       d.champion_model, d.champion_version, d.incumbent_model, d.incumbent_version,
       d.diff_vs_incumbent, d.se_vs_incumbent, d.diff_vs_baseline, d.se_vs_baseline,
       d.margin_se
FROM ml.promotion_decisions AS d;
COMMENT ON VIEW bi.promotion_decisions IS 'Every decision with its numbers: why production is what it is. kind = gate: a trained network version is promoted to its network''s production version only if it beats that version and the best baseline on weeks neither was trained on. kind = champion: each week, production is the contender (every baseline and every network''s production version) with the best mean Poisson deviance on recent weeks none was fitted to; a challenger replaces the incumbent only by more than margin_se standard errors.';
COMMENT ON COLUMN bi.promotion_decisions.decision_id IS 'Decision number, in order.';
COMMENT ON COLUMN bi.promotion_decisions.decided_at IS 'When the gate decided.';
COMMENT ON COLUMN bi.promotion_decisions.model_name IS 'Gate: the candidate model. Champion: the model made production (= champion_model).';
COMMENT ON COLUMN bi.promotion_decisions.version IS 'Gate: the candidate version (bi.model_versions). Champion: the champion''s registry version, NULL for a baseline.';
COMMENT ON COLUMN bi.promotion_decisions.promoted IS 'Gate: true if the candidate was promoted. Champion: true if production changed (a new champion, or the first).';
COMMENT ON COLUMN bi.promotion_decisions.reason IS 'The decision in words, with the scores it compared.';
COMMENT ON COLUMN bi.promotion_decisions.metric IS 'The gate metric (lower is better), e.g. poisson_deviance.';
COMMENT ON COLUMN bi.promotion_decisions.gate_weeks IS 'How many weeks the decision was made on (gate: validation weeks; champion: the window of recent weeks none of the contenders was fitted to).';
COMMENT ON COLUMN bi.promotion_decisions.first_gate_week IS 'First gate week.';
COMMENT ON COLUMN bi.promotion_decisions.last_gate_week IS 'Last gate week.';
COMMENT ON COLUMN bi.promotion_decisions.candidate_score IS 'Candidate''s (champion: the champion''s) mean metric on those weeks.';
COMMENT ON COLUMN bi.promotion_decisions.production_version IS 'The production version it was compared with (NULL: none yet, or a baseline incumbent).';
COMMENT ON COLUMN bi.promotion_decisions.production_score IS 'Production''s (champion: the incumbent''s) mean metric on the same weeks.';
COMMENT ON COLUMN bi.promotion_decisions.baseline_name IS 'The best baseline on the gate weeks.';
COMMENT ON COLUMN bi.promotion_decisions.baseline_score IS 'That baseline''s mean gate metric on the same weeks.';
COMMENT ON COLUMN bi.promotion_decisions.margin_vs_baseline IS 'candidate_score - baseline_score (negative: the candidate is better).';
COMMENT ON COLUMN bi.promotion_decisions.margin_vs_production IS 'candidate_score - production_score (negative: the candidate is better).';
COMMENT ON COLUMN bi.promotion_decisions.details IS 'Every contender''s numbers on those weeks (JSON text). Champion: contenders.<label>.mean (mean metrics), .weeks, .paired_vs_champion (diff, se, weeks); excluded (why a network version took no part); window; rule.';
COMMENT ON COLUMN bi.promotion_decisions.kind IS 'gate (training: a network version against its lineage and the baselines) or champion (the weekly choice of production among all contenders).';
COMMENT ON COLUMN bi.promotion_decisions.target_week IS 'Champion: the week whose production forecast it chose. NULL for gate decisions.';
COMMENT ON COLUMN bi.promotion_decisions.history_through IS 'Champion: the newest week of data it used (the run''s history_through).';
COMMENT ON COLUMN bi.promotion_decisions.horizon_weeks IS 'Champion: weeks from history_through to target_week.';
COMMENT ON COLUMN bi.promotion_decisions.champion_model IS 'Champion: the model made production for target_week.';
COMMENT ON COLUMN bi.promotion_decisions.champion_version IS 'Champion: its version as in bi.forecasts.model_version (baseline, or the registry version).';
COMMENT ON COLUMN bi.promotion_decisions.incumbent_model IS 'Champion: the model production the week before, as a contender now (NULL: none, or no longer a contender).';
COMMENT ON COLUMN bi.promotion_decisions.incumbent_version IS 'Champion: the incumbent''s version now (a network: its lineage''s production version).';
COMMENT ON COLUMN bi.promotion_decisions.diff_vs_incumbent IS 'Champion: mean paired difference champion - incumbent per week (negative: the champion is better; 0 when the incumbent stays).';
COMMENT ON COLUMN bi.promotion_decisions.se_vs_incumbent IS 'Champion: standard error of diff_vs_incumbent (Newey-West).';
COMMENT ON COLUMN bi.promotion_decisions.diff_vs_baseline IS 'Champion: mean paired difference champion - best baseline (baseline_name) per week (0 when the champion is that baseline).';
COMMENT ON COLUMN bi.promotion_decisions.se_vs_baseline IS 'Champion: standard error of diff_vs_baseline (Newey-West).';
COMMENT ON COLUMN bi.promotion_decisions.margin_se IS 'Champion: standard errors by which a challenger had to beat the incumbent (CRIMEJOB_CHAMPION_MARGIN_SE).';
