-- Issue 13 (backfill speed): which grid weeks were aggregated from raw.crime_records.
--
-- A run's as-of history (crimejob.grid.gridstore) counts only the incidents published by the
-- run. Instead of grouping every record of the history's weeks each run, it takes the
-- grid rows (the aggregation of all of them) and subtracts the few incidents first
-- reported at or after the run's cut-off. That is exact only for weeks whose grid rows
-- are the aggregation of the records: written by crimejob.grid.aggregate (true, the default),
-- not by crimejob.grid.gridstore.store_history (false: grids stored without records, in
-- tests, benchmarks and simulations), and not marked in ops.stale_weeks.
ALTER TABLE grid.weeks ADD COLUMN IF NOT EXISTS from_records boolean NOT NULL DEFAULT true;
COMMENT ON COLUMN grid.weeks.from_records IS
    'True when the week''s grid rows are the aggregation of raw.crime_records (crimejob.grid.aggregate); false when stored from arrays (store_history: tests, benchmarks).';
