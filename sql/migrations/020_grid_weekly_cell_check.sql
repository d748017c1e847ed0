-- grid.weekly is rewritten in bulk: 4,500 rows a week, 1.17 million for a five-year
-- backfill. Its foreign key to grid.cells costs one lookup per written row, which
-- measured as more than half the time of COPYing 260 weeks (benchmarks/bench_aggregate.py).
-- grid.cells is fixed (cell_id 0..4499, all of them, created by 002_grid_cells.sql),
-- so a CHECK on the range gives the same guarantee without the lookups.
ALTER TABLE grid.weekly DROP CONSTRAINT IF EXISTS weekly_cell_id_fkey;
ALTER TABLE grid.weekly ADD CONSTRAINT weekly_cell_id_in_grid CHECK (cell_id BETWEEN 0 AND 4499);
