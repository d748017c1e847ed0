-- Repeatable: dropped and re-created by every `crimejob db upgrade`. Edit this file to change
-- the view. Names and columns are the contract BI tools rely on; new columns go at the end.

CREATE VIEW bi.category_forecasts AS
SELECT target_week, cell_id, category, expected, probability, harm_weight_days, model_name,
       history_through, horizon_weeks, created_at
FROM ml.category_forecasts;
COMMENT ON VIEW bi.category_forecasts IS 'Crime-type mix forecast: per target week and cell, the expected incidents of each category and the probability that an incident there is of it (docs/categories.md). Cells with no incident in their history have no rows.';
COMMENT ON COLUMN bi.category_forecasts.target_week IS 'Monday of the week forecast.';
COMMENT ON COLUMN bi.category_forecasts.cell_id IS 'Grid cell, see bi.grid_cells.';
COMMENT ON COLUMN bi.category_forecasts.category IS 'One of the ten categories of bi.weekly_category_counts.';
COMMENT ON COLUMN bi.category_forecasts.expected IS 'Expected incidents of the category: the cell''s 52-week mean of all incidents times probability.';
COMMENT ON COLUMN bi.category_forecasts.probability IS 'Probability that an incident in the cell is of this category: the cell''s long-run mix shrunk towards its division''s; sums to 1 over the ten categories.';
COMMENT ON COLUMN bi.category_forecasts.harm_weight_days IS 'The category''s harm weight: days of imprisonment for a first offence under California sentencing (crimejob/severity.py, sources in docs/categories.md).';
COMMENT ON COLUMN bi.category_forecasts.model_name IS 'The mix model (shrunk_mix).';
COMMENT ON COLUMN bi.category_forecasts.history_through IS 'Newest week of data the forecast used.';
COMMENT ON COLUMN bi.category_forecasts.horizon_weeks IS 'Weeks from history_through to target_week.';
COMMENT ON COLUMN bi.category_forecasts.created_at IS 'When the forecast was written.';
