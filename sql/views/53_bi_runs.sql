-- Repeatable: dropped and re-created by every `crimejob db upgrade`. Edit this file to change
-- the view. Names and columns are the contract BI tools rely on; new columns go at the end.

CREATE VIEW bi.runs AS
SELECT run_id, kind, week_start, status, started_at, finished_at,
       extract(epoch FROM finished_at - started_at) AS seconds, message,
       params::text AS params, counts::text AS counts, step_seconds::text AS step_seconds
FROM ops.runs;
COMMENT ON VIEW bi.runs IS 'Every run of the job and its commands: what ran, for which week, when, how long, how it ended.';
COMMENT ON COLUMN bi.runs.run_id IS 'Run number, in order.';
COMMENT ON COLUMN bi.runs.kind IS 'weekly (the weekly job), ingest_crime, ingest_weather, aggregate, ...';
COMMENT ON COLUMN bi.runs.week_start IS 'The week the run was for (NULL for commands without one).';
COMMENT ON COLUMN bi.runs.status IS 'running, succeeded, failed, incomplete (the source had not published the week), skipped, or abandoned (its process ended without finishing it).';
COMMENT ON COLUMN bi.runs.started_at IS 'When the run started.';
COMMENT ON COLUMN bi.runs.finished_at IS 'When it ended (NULL while running, or if it was killed).';
COMMENT ON COLUMN bi.runs.seconds IS 'finished_at - started_at in seconds.';
COMMENT ON COLUMN bi.runs.message IS 'The error or note it ended with.';
COMMENT ON COLUMN bi.runs.params IS 'Its parameters (JSON text); a weekly run: mode, allow_incomplete, offline, backfill, and airflow_run_id (dag_id/run_id) when Airflow ran it.';
COMMENT ON COLUMN bi.runs.counts IS 'What it counted: records, rows, weeks (JSON text); a weekly run: each step''s result under the step''s name.';
COMMENT ON COLUMN bi.runs.step_seconds IS 'Seconds per step (JSON text).';
