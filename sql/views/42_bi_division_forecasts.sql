-- Repeatable: dropped and re-created by every `crimejob db upgrade`. Edit this file to change
-- the view. Names and columns are the contract BI tools rely on; new columns go at the end.

CREATE VIEW bi.division_forecasts AS
SELECT target_week, area_name, model_name, is_production, predicted, predicted_low,
       predicted_high, model_version, method, area_code, cells, dispersion,
       history_through, horizon_weeks, created_at
FROM ml.division_forecasts;
COMMENT ON VIEW bi.division_forecasts IS 'Violent incidents forecast per LAPD division and for the whole city (area_name citywide), per target week and model. Cell models: the sum of the division''s cell forecasts (bi.forecasts, bi.cell_divisions); volume models forecast the total directly.';
COMMENT ON COLUMN bi.division_forecasts.target_week IS 'Monday of the week forecast.';
COMMENT ON COLUMN bi.division_forecasts.area_name IS 'LAPD division (bi.cell_divisions), or citywide: every cell of the grid.';
COMMENT ON COLUMN bi.division_forecasts.model_name IS 'Forecaster name: the cell models of bi.forecasts, and volume models (e.g. volume_lgbm).';
COMMENT ON COLUMN bi.division_forecasts.is_production IS 'True for the production cell model''s sums.';
COMMENT ON COLUMN bi.division_forecasts.predicted IS 'Expected violent incidents in the division that week (cell models: the sum over its cells).';
COMMENT ON COLUMN bi.division_forecasts.predicted_low IS '5% quantile of the summed predictive distribution (cells independent NB2 given their means, moment-matched; see crimejob/uncertainty.py sum_of_cells).';
COMMENT ON COLUMN bi.division_forecasts.predicted_high IS '95% quantile of the summed predictive distribution: low..high holds at least 90%.';
COMMENT ON COLUMN bi.division_forecasts.model_version IS 'Registry version of the model (baselines: baseline).';
COMMENT ON COLUMN bi.division_forecasts.method IS 'sum_of_cells (a cell model summed) or volume_model (the division total forecast directly).';
COMMENT ON COLUMN bi.division_forecasts.area_code IS 'LAPD area number (1 Central .. 21 Topanga); NULL for citywide.';
COMMENT ON COLUMN bi.division_forecasts.cells IS 'Grid cells summed (citywide: all 4,500).';
COMMENT ON COLUMN bi.division_forecasts.dispersion IS 'NB2 dispersion of the summed distribution (0 = Poisson).';
COMMENT ON COLUMN bi.division_forecasts.history_through IS 'Newest week of data the forecast used.';
COMMENT ON COLUMN bi.division_forecasts.horizon_weeks IS 'Weeks from history_through to target_week.';
COMMENT ON COLUMN bi.division_forecasts.created_at IS 'When the forecast was written.';
