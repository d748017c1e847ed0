-- bi views over forecasts, errors and scores. Names and columns are the contract
-- BI tools (Superset, Metabase, Tableau) rely on; new columns go at the end.

CREATE VIEW bi.forecasts AS
SELECT f.target_week, f.cell_id, f.predicted, f.rank, f.model_name, f.model_version,
       f.created_at, c.lat_center, c.lon_center, f.is_production, f.history_through
FROM ml.forecasts AS f
JOIN grid.cells AS c USING (cell_id);
COMMENT ON VIEW bi.forecasts IS 'Every forecast written: one row per target week, model and cell.';
COMMENT ON COLUMN bi.forecasts.target_week IS 'Monday of the week forecast (America/Los_Angeles).';
COMMENT ON COLUMN bi.forecasts.cell_id IS 'Grid cell, see bi.grid_cells.';
COMMENT ON COLUMN bi.forecasts.predicted IS 'Expected number of violent incidents in the cell that week.';
COMMENT ON COLUMN bi.forecasts.rank IS '1 = highest predicted cell of this forecast; ties broken by cell_id.';
COMMENT ON COLUMN bi.forecasts.model_name IS 'Forecaster: the production Conv3D model or a baseline (last_week, mean_4w, ...).';
COMMENT ON COLUMN bi.forecasts.model_version IS 'Registry version of the model (baselines: baseline).';
COMMENT ON COLUMN bi.forecasts.created_at IS 'When the forecast was written.';
COMMENT ON COLUMN bi.forecasts.lat_center IS 'Latitude of the cell centre.';
COMMENT ON COLUMN bi.forecasts.lon_center IS 'Longitude of the cell centre.';
COMMENT ON COLUMN bi.forecasts.is_production IS 'True for the forecast of the production model, the one to act on.';
COMMENT ON COLUMN bi.forecasts.history_through IS 'Last week of data the forecast was made from.';

CREATE VIEW bi.forecast_latest AS
SELECT *
FROM bi.forecasts
WHERE is_production
  AND target_week = (SELECT max(target_week) FROM ml.forecasts WHERE is_production);
COMMENT ON VIEW bi.forecast_latest IS 'The production forecast for the newest target week: 4,500 ranked cells.';
DO $$
DECLARE col record;
BEGIN
    -- same columns, same meaning as bi.forecasts: copy its column comments
    FOR col IN
        SELECT a.attname, col_description('bi.forecasts'::regclass, a.attnum) AS doc
        FROM pg_attribute AS a
        WHERE a.attrelid = 'bi.forecasts'::regclass AND a.attnum > 0 AND NOT a.attisdropped
    LOOP
        EXECUTE format('COMMENT ON COLUMN bi.forecast_latest.%I IS %L', col.attname, col.doc);
    END LOOP;
END
$$;

CREATE VIEW bi.forecast_errors AS
SELECT e.target_week, e.cell_id, e.predicted, e.actual, e.error, e.model_name,
       e.model_version, e.is_production, abs(e.error) AS abs_error,
       c.lat_center, c.lon_center
FROM ml.forecast_errors AS e
JOIN grid.cells AS c USING (cell_id);
COMMENT ON VIEW bi.forecast_errors IS 'Per-cell error of each forecast once its week has happened.';
COMMENT ON COLUMN bi.forecast_errors.target_week IS 'Monday of the week that was forecast.';
COMMENT ON COLUMN bi.forecast_errors.cell_id IS 'Grid cell, see bi.grid_cells.';
COMMENT ON COLUMN bi.forecast_errors.predicted IS 'What the model predicted for the cell.';
COMMENT ON COLUMN bi.forecast_errors.actual IS 'Violent incidents that happened (as known when scored).';
COMMENT ON COLUMN bi.forecast_errors.error IS 'predicted - actual (positive = over-forecast).';
COMMENT ON COLUMN bi.forecast_errors.model_name IS 'Forecaster name.';
COMMENT ON COLUMN bi.forecast_errors.model_version IS 'Registry version of the model.';
COMMENT ON COLUMN bi.forecast_errors.is_production IS 'True for the production model.';
COMMENT ON COLUMN bi.forecast_errors.abs_error IS '|predicted - actual|.';
COMMENT ON COLUMN bi.forecast_errors.lat_center IS 'Latitude of the cell centre.';
COMMENT ON COLUMN bi.forecast_errors.lon_center IS 'Longitude of the cell centre.';

CREATE VIEW bi.forecast_scores AS
SELECT target_week, model_name, model_version, mae, rmse, poisson_deviance,
       hit_rate_1pct, pai_1pct, pei_1pct, hit_rate_5pct, pai_5pct, pei_5pct,
       actual_total, is_production, mae_active, rmse_active, poisson_deviance_active,
       predicted_total, active_cells, scored_at
FROM ml.forecast_scores;
COMMENT ON VIEW bi.forecast_scores IS 'Weekly scoreboard: each model''s metrics on the same target week.';
COMMENT ON COLUMN bi.forecast_scores.target_week IS 'Monday of the week that was forecast.';
COMMENT ON COLUMN bi.forecast_scores.model_name IS 'Forecaster name (production model and baselines).';
COMMENT ON COLUMN bi.forecast_scores.model_version IS 'Registry version of the model.';
COMMENT ON COLUMN bi.forecast_scores.mae IS 'Mean absolute error over all 4,500 cells.';
COMMENT ON COLUMN bi.forecast_scores.rmse IS 'Root mean squared error over all cells.';
COMMENT ON COLUMN bi.forecast_scores.poisson_deviance IS 'Mean Poisson deviance over all cells (lower is better).';
COMMENT ON COLUMN bi.forecast_scores.hit_rate_1pct IS 'Share of incidents in the 45 highest-predicted cells (1% of area).';
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
