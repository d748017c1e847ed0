-- Repeatable: dropped and re-created by every `crimejob db upgrade`. Edit this file to change
-- the view. Names and columns are the contract BI tools rely on; new columns go at the end.

CREATE VIEW bi.division_scores AS
WITH actual AS (
    SELECT w.week_start, a.area_name, sum(w.violent_count)::integer AS actual
    FROM grid.weekly AS w JOIN grid.cell_areas AS a USING (cell_id)
    GROUP BY w.week_start, a.area_name
    UNION ALL
    SELECT week_start, 'citywide', sum(violent_count)::integer
    FROM grid.weekly
    GROUP BY week_start
)
SELECT f.target_week, f.area_name, f.model_name, f.is_production, f.horizon_weeks,
       f.predicted, coalesce(a.actual, 0) AS actual,
       f.predicted - coalesce(a.actual, 0) AS error,
       abs(f.predicted - coalesce(a.actual, 0)) AS abs_error,
       2 * (CASE WHEN coalesce(a.actual, 0) > 0
                 THEN a.actual * ln(a.actual / greatest(f.predicted, 1e-9)) ELSE 0 END
            - (coalesce(a.actual, 0) - f.predicted)) AS poisson_deviance,
       coalesce(a.actual, 0) BETWEEN f.predicted_low AND f.predicted_high AS inside_90,
       f.model_version, f.method, f.predicted_low, f.predicted_high
FROM ml.division_forecasts AS f
JOIN grid.weeks AS wk ON wk.week_start = f.target_week
LEFT JOIN actual AS a ON a.week_start = f.target_week AND a.area_name = f.area_name;
COMMENT ON VIEW bi.division_scores IS 'Each division and citywide forecast (bi.division_forecasts) against what happened, once its target week is aggregated: one row per week, division and model. Divisions are the current bi.cell_divisions mapping.';
COMMENT ON COLUMN bi.division_scores.target_week IS 'Monday of the week forecast.';
COMMENT ON COLUMN bi.division_scores.area_name IS 'LAPD division, or citywide.';
COMMENT ON COLUMN bi.division_scores.model_name IS 'Forecaster name.';
COMMENT ON COLUMN bi.division_scores.is_production IS 'True for the production cell model''s sums.';
COMMENT ON COLUMN bi.division_scores.horizon_weeks IS 'Weeks from the newest data used to the target week.';
COMMENT ON COLUMN bi.division_scores.predicted IS 'Expected violent incidents.';
COMMENT ON COLUMN bi.division_scores.actual IS 'Violent incidents in the division''s cells that week (bi.weekly_counts).';
COMMENT ON COLUMN bi.division_scores.error IS 'predicted - actual.';
COMMENT ON COLUMN bi.division_scores.abs_error IS '|predicted - actual|; its mean over weeks is the MAE.';
COMMENT ON COLUMN bi.division_scores.poisson_deviance IS 'Poisson deviance of the week (lower is better).';
COMMENT ON COLUMN bi.division_scores.inside_90 IS 'True if actual lies in predicted_low..predicted_high; its share over weeks is the 90% interval''s coverage.';
COMMENT ON COLUMN bi.division_scores.model_version IS 'Registry version of the model (baselines: baseline).';
COMMENT ON COLUMN bi.division_scores.method IS 'sum_of_cells or volume_model.';
COMMENT ON COLUMN bi.division_scores.predicted_low IS '5% quantile of the forecast (bi.division_forecasts).';
COMMENT ON COLUMN bi.division_scores.predicted_high IS '95% quantile of the forecast (bi.division_forecasts).';
