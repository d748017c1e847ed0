-- Repeatable: dropped and re-created by every `crimejob db upgrade`. Edit this file to change
-- the view. Names and columns are the contract BI tools rely on; new columns go at the end.

CREATE VIEW bi.forecasts AS
SELECT f.target_week, f.cell_id, f.predicted, f.rank, f.model_name, f.model_version,
       f.created_at, c.lat_center, c.lon_center, f.is_production, f.history_through,
       f.horizon_weeks
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
COMMENT ON COLUMN bi.forecasts.history_through IS 'Last week of data the forecast was made from: the newest week complete after the publication lag when the run happened (target_week - 3 weeks with the default 14-day lag).';
COMMENT ON COLUMN bi.forecasts.horizon_weeks IS 'How many weeks ahead the forecast was made: target_week - history_through, in weeks (3 with the default 14-day publication lag, 1 with none).';
