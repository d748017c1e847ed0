-- Repeatable: dropped and re-created by every `crimejob db upgrade`. Edit this file to change
-- the view. Names and columns are the contract BI tools rely on; new columns go at the end.

CREATE VIEW bi.week_status AS
WITH weeks AS (
    SELECT week_start FROM grid.weeks
    UNION SELECT week_start FROM ops.runs WHERE kind = 'weekly' AND week_start IS NOT NULL
),
last_run AS (
    SELECT DISTINCT ON (week_start) week_start, run_id, status, started_at, finished_at, message
    FROM ops.runs WHERE kind = 'weekly' AND week_start IS NOT NULL
    ORDER BY week_start, run_id DESC
),
forecast AS (
    SELECT target_week, min(model_name) FILTER (WHERE is_production) AS production_model,
           max(created_at) AS forecast_at
    FROM ml.forecasts GROUP BY target_week
),
scored AS (SELECT target_week, max(scored_at) AS scored_at FROM ml.forecast_scores GROUP BY target_week)
SELECT w.week_start, g.week_start IS NOT NULL AS aggregated, g.aggregated_at,
       r.run_id AS last_run_id, r.status AS last_run_status, r.started_at AS last_run_started_at,
       r.finished_at AS last_run_finished_at, r.message AS last_run_message,
       f.production_model AS forecast_model, f.forecast_at, s.scored_at,
       coalesce(r.status = 'succeeded' AND f.production_model IS NOT NULL, false) AS complete
FROM weeks AS w
LEFT JOIN grid.weeks AS g USING (week_start)
LEFT JOIN last_run AS r USING (week_start)
LEFT JOIN forecast AS f ON f.target_week = w.week_start + 7
LEFT JOIN scored AS s ON s.target_week = w.week_start;
COMMENT ON VIEW bi.week_status IS 'One row per week: is it aggregated, how did its weekly run end, is the forecast it made in place, has the week itself been scored. How fresh production is.';
COMMENT ON COLUMN bi.week_status.week_start IS 'Monday of the week (America/Los_Angeles).';
COMMENT ON COLUMN bi.week_status.aggregated IS 'True if the week has grid rows.';
COMMENT ON COLUMN bi.week_status.aggregated_at IS 'When its grid rows were last computed (late reports recompute them).';
COMMENT ON COLUMN bi.week_status.last_run_id IS 'The newest weekly run for this week (bi.runs).';
COMMENT ON COLUMN bi.week_status.last_run_status IS 'How that run ended: succeeded, failed, incomplete, abandoned, running.';
COMMENT ON COLUMN bi.week_status.last_run_started_at IS 'When that run started.';
COMMENT ON COLUMN bi.week_status.last_run_finished_at IS 'When that run ended.';
COMMENT ON COLUMN bi.week_status.last_run_message IS 'The error or note that run ended with.';
COMMENT ON COLUMN bi.week_status.forecast_model IS 'The production model of the forecast for the week after (NULL: no forecast).';
COMMENT ON COLUMN bi.week_status.forecast_at IS 'When the forecast for the week after was written.';
COMMENT ON COLUMN bi.week_status.scored_at IS 'When forecasts of this week were scored against its actual counts (NULL: not yet).';
COMMENT ON COLUMN bi.week_status.complete IS 'True when the week''s weekly run succeeded and the production forecast it made is in place.';
