-- raw.crime_records.cell_id: a CHECK on the grid's range instead of the foreign key to
-- grid.cells, as migration 283 did for the forecast tables (grid.cells holds every cell
-- 0..4499 and is never written again). The key cost a trigger lookup per row written by
-- an API week, and a validating join over the whole table at the end of a bulk CSV
-- import into the empty table (0.26-0.38 s of a million-row import); the check refuses
-- the same cell ids at no cost.
DO $$
DECLARE
    fk record;
BEGIN
    FOR fk IN
        SELECT c.conname
        FROM pg_constraint AS c
        WHERE c.contype = 'f'
          AND c.confrelid = 'grid.cells'::regclass
          AND c.conrelid = 'raw.crime_records'::regclass
    LOOP
        EXECUTE format('ALTER TABLE raw.crime_records DROP CONSTRAINT %I', fk.conname);
    END LOOP;
END
$$;

ALTER TABLE raw.crime_records
    ADD CONSTRAINT crime_records_cell_id_in_grid CHECK (cell_id BETWEEN 0 AND 4499);
