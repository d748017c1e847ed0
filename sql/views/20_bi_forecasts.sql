-- Repeatable: dropped and re-created by every `crimejob db upgrade`. Edit this file to change
-- the view. Names and columns are the contract BI tools rely on; new columns go at the end.

CREATE VIEW bi.forecasts AS
SELECT f.target_week, f.cell_id, f.predicted, f.rank, f.model_name, f.model_version,
       f.created_at, c.lat_center, c.lon_center, f.is_production, f.history_through,
       f.horizon_weeks,
       f.prob_any, f.predicted_low, f.predicted_high,
       f.flag_1pct > 0 AS hotspot_1pct, f.flag_5pct > 0 AS hotspot_5pct, f.flag_5pct,
       f.dispersion, a.area_name,
       CASE WHEN f.is_production THEN d.reason END AS production_reason
FROM ml.forecasts AS f
JOIN grid.cells AS c USING (cell_id)
LEFT JOIN grid.cell_areas AS a USING (cell_id)
LEFT JOIN ml.promotion_decisions AS d
       ON d.kind = 'champion' AND d.target_week = f.target_week;
COMMENT ON VIEW bi.forecasts IS 'Every forecast written: one row per target week, model and cell.';
COMMENT ON COLUMN bi.forecasts.target_week IS 'Monday of the week forecast (America/Los_Angeles).';
COMMENT ON COLUMN bi.forecasts.cell_id IS 'Grid cell, see bi.grid_cells.';
COMMENT ON COLUMN bi.forecasts.predicted IS 'Expected number of violent incidents in the cell that week.';
COMMENT ON COLUMN bi.forecasts.rank IS '1 = highest predicted cell of this forecast. Tied cells share the best rank of their tie (1, 2, 2, 4), so every zero forecast shares the last rank. (Forecasts written before issue 12 broke ties by cell_id.)';
COMMENT ON COLUMN bi.forecasts.model_name IS 'Forecaster: the production Conv3D model or a baseline (last_week, mean_4w, ...).';
COMMENT ON COLUMN bi.forecasts.model_version IS 'Registry version of the model (baselines: baseline).';
COMMENT ON COLUMN bi.forecasts.created_at IS 'When the forecast was written.';
COMMENT ON COLUMN bi.forecasts.lat_center IS 'Latitude of the cell centre.';
COMMENT ON COLUMN bi.forecasts.lon_center IS 'Longitude of the cell centre.';
COMMENT ON COLUMN bi.forecasts.is_production IS 'True for the forecast of the production model, the one to act on.';
COMMENT ON COLUMN bi.forecasts.history_through IS 'Last week of data the forecast was made from: the newest week complete after the publication lag when the run happened (target_week - 3 weeks with the default 14-day lag).';
COMMENT ON COLUMN bi.forecasts.horizon_weeks IS 'How many weeks ahead the forecast was made: target_week - history_through, in weeks (3 with the default 14-day publication lag, 1 with none).';
COMMENT ON COLUMN bi.forecasts.prob_any IS 'Probability of at least one violent incident in the cell that week, from the predictive distribution (negative binomial around predicted with the forecast''s dispersion; Poisson when 0). NULL for forecasts written before issue 12.';
COMMENT ON COLUMN bi.forecasts.predicted_low IS 'Lower end of the 90% interval: the 5% quantile of the predictive distribution (integer counts: the interval holds at least 90%).';
COMMENT ON COLUMN bi.forecasts.predicted_high IS 'Upper end of the 90% interval: the 95% quantile of the predictive distribution.';
COMMENT ON COLUMN bi.forecasts.hotspot_1pct IS 'True if the cell is among the 45 flagged cells (1% of the area). A zero forecast is never flagged; cells tied at the boundary are all true (see flag_5pct for the shares).';
COMMENT ON COLUMN bi.forecasts.hotspot_5pct IS 'True if the cell is among the 225 flagged cells (5% of the area). A zero forecast is never flagged, so fewer cells may be flagged.';
COMMENT ON COLUMN bi.forecasts.flag_5pct IS 'How much of the cell the 5% budget flags: 1 above the boundary, 0 below it and for zero forecasts, a share between for cells tied at the boundary (the chance random tie-breaking flags it). Sums to at most 225.';
COMMENT ON COLUMN bi.forecasts.dispersion IS 'Negative-binomial dispersion alpha of the forecast (variance = predicted + alpha * predicted^2), fitted on the model''s own errors over the 13 weeks before; 0 = Poisson.';
COMMENT ON COLUMN bi.forecasts.area_name IS 'LAPD division of the cell (bi.cell_divisions); NULL where LAPD has never recorded an incident.';
COMMENT ON COLUMN bi.forecasts.production_reason IS 'Why this model is production for the week (production rows only): the champion decision''s reason, with each mean Poisson deviance and the paired difference and SE it compared (all numbers: bi.promotion_decisions where kind = champion). NULL on other rows and on forecasts written before champion decisions.';
