-- Repeatable: dropped and re-created by every `crimejob db upgrade`. Edit this file to change
-- the view. Names and columns are the contract BI tools rely on; new columns go at the end.

CREATE VIEW bi.forecast_scores AS
SELECT target_week, model_name, model_version, mae, rmse, poisson_deviance,
       hit_rate_1pct, pai_1pct, pei_1pct, hit_rate_5pct, pai_5pct, pei_5pct,
       actual_total, is_production, mae_active, rmse_active, poisson_deviance_active,
       predicted_total, active_cells, scored_at,
       hit_rate_10pct, pai_10pct, pei_10pct, mass_ratio
FROM ml.forecast_scores;
COMMENT ON VIEW bi.forecast_scores IS 'Weekly scoreboard: each model''s metrics on the same target week.';
COMMENT ON COLUMN bi.forecast_scores.target_week IS 'Monday of the week that was forecast.';
COMMENT ON COLUMN bi.forecast_scores.model_name IS 'Forecaster name (production model and baselines).';
COMMENT ON COLUMN bi.forecast_scores.model_version IS 'Registry version of the model.';
COMMENT ON COLUMN bi.forecast_scores.mae IS 'Mean absolute error over all 4,500 cells.';
COMMENT ON COLUMN bi.forecast_scores.rmse IS 'Root mean squared error over all cells.';
COMMENT ON COLUMN bi.forecast_scores.poisson_deviance IS 'Mean Poisson deviance over all cells (lower is better).';
COMMENT ON COLUMN bi.forecast_scores.hit_rate_1pct IS 'Share of incidents in the 45 highest-predicted cells (1% of area). Zero forecasts are never flagged; ties at the boundary count fractionally.';
COMMENT ON COLUMN bi.forecast_scores.pai_1pct IS 'Predictive accuracy index at 1%: hit rate / area share.';
COMMENT ON COLUMN bi.forecast_scores.pei_1pct IS 'Predictive efficiency index at 1%: incidents flagged / best possible 45 cells.';
COMMENT ON COLUMN bi.forecast_scores.hit_rate_5pct IS 'Share of incidents in the 225 highest-predicted cells (5% of area).';
COMMENT ON COLUMN bi.forecast_scores.pai_5pct IS 'Predictive accuracy index at 5%.';
COMMENT ON COLUMN bi.forecast_scores.pei_5pct IS 'Predictive efficiency index at 5%.';
COMMENT ON COLUMN bi.forecast_scores.actual_total IS 'Violent incidents that happened that week, all cells.';
COMMENT ON COLUMN bi.forecast_scores.is_production IS 'True for the production model.';
COMMENT ON COLUMN bi.forecast_scores.mae_active IS 'MAE over active cells (any incident in the history).';
COMMENT ON COLUMN bi.forecast_scores.rmse_active IS 'RMSE over active cells.';
COMMENT ON COLUMN bi.forecast_scores.poisson_deviance_active IS 'Mean Poisson deviance over active cells.';
COMMENT ON COLUMN bi.forecast_scores.predicted_total IS 'Sum of the predictions over all cells.';
COMMENT ON COLUMN bi.forecast_scores.active_cells IS 'How many cells count as active for the *_active metrics.';
COMMENT ON COLUMN bi.forecast_scores.scored_at IS 'When the week was scored.';
COMMENT ON COLUMN bi.forecast_scores.hit_rate_10pct IS 'Share of incidents in the 450 highest-predicted cells (10% of area).';
COMMENT ON COLUMN bi.forecast_scores.pai_10pct IS 'Predictive accuracy index at 10%.';
COMMENT ON COLUMN bi.forecast_scores.pei_10pct IS 'Predictive efficiency index at 10%.';
COMMENT ON COLUMN bi.forecast_scores.mass_ratio IS 'predicted_total / actual_total: 1 = the forecast expected as many incidents as happened; above 1 over-forecasts.';
