-- Repeatable: dropped and re-created by every `crimejob db upgrade`. Edit this file to change
-- the view. Names and columns are the contract BI tools rely on; new columns go at the end.

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
