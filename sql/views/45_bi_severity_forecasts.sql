-- Repeatable: dropped and re-created by every `crimejob db upgrade`. Edit this file to change
-- the view. Names and columns are the contract BI tools rely on; new columns go at the end.

CREATE VIEW bi.severity_forecasts AS
SELECT target_week, cell_id, model_name,
       sum(expected * harm_weight_days) AS expected_harm_days,
       sum(expected) AS expected_incidents
FROM ml.category_forecasts
GROUP BY target_week, cell_id, model_name;
COMMENT ON VIEW bi.severity_forecasts IS 'Severity-weighted forecast per target week and cell: the expected incidents of each category times its harm weight (Cambridge Crime Harm Index idea under California sentencing), summed.';
COMMENT ON COLUMN bi.severity_forecasts.target_week IS 'Monday of the week forecast.';
COMMENT ON COLUMN bi.severity_forecasts.cell_id IS 'Grid cell, see bi.grid_cells.';
COMMENT ON COLUMN bi.severity_forecasts.model_name IS 'The mix model (shrunk_mix).';
COMMENT ON COLUMN bi.severity_forecasts.expected_harm_days IS 'Expected harm: sum over categories of expected incidents x harm_weight_days (days of imprisonment).';
COMMENT ON COLUMN bi.severity_forecasts.expected_incidents IS 'Expected incidents of all kinds (the cell''s 52-week mean).';
