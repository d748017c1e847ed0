-- The publication lag, designed in (issue 9): the run for week W forecasts W+1 from the
-- newest week whose reports are all published (W-2 with a 14-day lag), so every forecast
-- records how far ahead it was made. Earlier forecasts were made at horizon 1.

ALTER TABLE ml.forecasts ADD COLUMN horizon_weeks integer;
UPDATE ml.forecasts SET horizon_weeks = (target_week - history_through) / 7;
ALTER TABLE ml.forecasts
    ALTER COLUMN horizon_weeks SET NOT NULL,
    ADD CONSTRAINT forecasts_horizon_matches_history
        CHECK (horizon_weeks >= 1 AND target_week - history_through = 7 * horizon_weeks);
COMMENT ON COLUMN ml.forecasts.horizon_weeks IS
    'Weeks from history_through (the last week of data used) to target_week.';
