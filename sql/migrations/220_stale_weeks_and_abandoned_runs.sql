-- Issue 13: what a killed run leaves behind is found and finished by the next one.
--
-- ops.stale_weeks: weeks whose raw records or weather changed and that have not been
-- aggregated since. A load marks them in its own transaction and an aggregation clears
-- them in its own, so a run killed between load and aggregate leaves its late-report
-- weeks marked, and the next run re-aggregates them although its load changes nothing.
CREATE TABLE ops.stale_weeks (
    week_start date PRIMARY KEY,
    marked_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE ops.stale_weeks IS 'Weeks loaded but not aggregated since (a run killed in between): the next run aggregates them.';

-- A run whose process ended without finishing it (kill -9, a lost machine) is
-- 'abandoned': each run holds an advisory lock while it lives, and the next run
-- marks 'running' rows whose lock is gone.
ALTER TABLE ops.runs DROP CONSTRAINT IF EXISTS runs_status_check;
ALTER TABLE ops.runs ADD CONSTRAINT runs_status_check
    CHECK (status IN ('running', 'succeeded', 'failed', 'incomplete', 'skipped', 'abandoned'));
