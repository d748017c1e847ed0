-- Repeatable: dropped and re-created by every `crimejob db upgrade`. Edit this file to change
-- the view. Names and columns are the contract BI tools rely on; new columns go at the end.

CREATE VIEW bi.forecast_scores_by_area AS
SELECT target_week, area_name, model_name, model_version, is_production, mae,
       poisson_deviance, hit_rate_5pct, pai_5pct, pei_5pct, actual_total, predicted_total,
       area_code, cells, coverage_90, scored_at
FROM ml.forecast_scores_by_area;
COMMENT ON VIEW bi.forecast_scores_by_area IS 'Error by LAPD division, every scored week: one row per week, division and model (the production model and every baseline, on the same actuals). A division is scored like a city of its own: its hotspot metrics use 5% of its own cells.';
COMMENT ON COLUMN bi.forecast_scores_by_area.target_week IS 'Monday of the week that was forecast.';
COMMENT ON COLUMN bi.forecast_scores_by_area.area_name IS 'LAPD division (bi.cell_divisions: the area most of a cell''s incidents carry).';
COMMENT ON COLUMN bi.forecast_scores_by_area.model_name IS 'Forecaster name (production model and baselines).';
COMMENT ON COLUMN bi.forecast_scores_by_area.model_version IS 'Registry version of the model (baselines: baseline).';
COMMENT ON COLUMN bi.forecast_scores_by_area.is_production IS 'True for the production model.';
COMMENT ON COLUMN bi.forecast_scores_by_area.mae IS 'Mean absolute error over the division''s cells.';
COMMENT ON COLUMN bi.forecast_scores_by_area.poisson_deviance IS 'Mean Poisson deviance over the division''s cells (lower is better; grows with the division''s crime level).';
COMMENT ON COLUMN bi.forecast_scores_by_area.hit_rate_5pct IS 'Share of the division''s incidents in its flagged cells, flagging 5% of its own cells (at least one). Zero forecasts never flagged; boundary ties count fractionally. NULL in a week without incidents there.';
COMMENT ON COLUMN bi.forecast_scores_by_area.pai_5pct IS 'Predictive accuracy index: hit_rate_5pct / the share of the division''s cells flagged.';
COMMENT ON COLUMN bi.forecast_scores_by_area.pei_5pct IS 'Predictive efficiency index: incidents in the flagged cells / incidents in the best possible as many cells of the division.';
COMMENT ON COLUMN bi.forecast_scores_by_area.actual_total IS 'Violent incidents in the division that week.';
COMMENT ON COLUMN bi.forecast_scores_by_area.predicted_total IS 'Sum of the division''s cell forecasts.';
COMMENT ON COLUMN bi.forecast_scores_by_area.area_code IS 'LAPD area number (1 Central .. 21 Topanga).';
COMMENT ON COLUMN bi.forecast_scores_by_area.cells IS 'Grid cells in the division.';
COMMENT ON COLUMN bi.forecast_scores_by_area.coverage_90 IS 'Share of the division''s cells whose count fell inside their 90% interval.';
COMMENT ON COLUMN bi.forecast_scores_by_area.scored_at IS 'When the week was scored.';
