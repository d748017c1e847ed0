-- Repeatable: dropped and re-created by every `crimejob db upgrade`. Edit this file to change
-- the view. Names and columns are the contract BI tools rely on; new columns go at the end.

CREATE VIEW bi.cell_divisions AS
SELECT cell_id, area_code, area_name, incidents, share
FROM grid.cell_areas;
COMMENT ON VIEW bi.cell_divisions IS 'The LAPD division (area) of each grid cell LAPD has recorded incidents in: the area most of the cell''s incidents carry. Cells with no row (ocean, mountains, other cities) belong to no division.';
COMMENT ON COLUMN bi.cell_divisions.cell_id IS 'Grid cell, see bi.grid_cells.';
COMMENT ON COLUMN bi.cell_divisions.area_code IS 'LAPD area number (1 Central .. 21 Topanga), as the records give it.';
COMMENT ON COLUMN bi.cell_divisions.area_name IS 'LAPD area (division) name, the spelling most records of that code use.';
COMMENT ON COLUMN bi.cell_divisions.incidents IS 'Incidents of all kinds in the cell, over every aggregated week, that carry this area.';
COMMENT ON COLUMN bi.cell_divisions.share IS 'incidents / all incidents of the cell that carry any area (1 = every one carries this area; a border cell has less).';
