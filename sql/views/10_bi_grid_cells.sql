-- Repeatable: dropped and re-created by every `crimejob db upgrade`. Edit this file to change
-- the view. Names and columns are the contract BI tools rely on; new columns go at the end.

CREATE VIEW bi.grid_cells AS
SELECT cell_id, row, col, lat_min, lat_max, lon_min, lon_max, lat_center, lon_center, geojson
FROM grid.cells;
COMMENT ON VIEW bi.grid_cells IS 'The 60 x 75 grid over the City of Los Angeles, one row per cell.';
COMMENT ON COLUMN bi.grid_cells.cell_id IS 'row * 75 + col, 0..4499.';
COMMENT ON COLUMN bi.grid_cells.row IS 'Grid row, 0 = northern edge.';
COMMENT ON COLUMN bi.grid_cells.col IS 'Grid column, 0 = western edge.';
COMMENT ON COLUMN bi.grid_cells.lat_min IS 'Southern edge of the cell (degrees).';
COMMENT ON COLUMN bi.grid_cells.lat_max IS 'Northern edge of the cell (degrees).';
COMMENT ON COLUMN bi.grid_cells.lon_min IS 'Western edge of the cell (degrees).';
COMMENT ON COLUMN bi.grid_cells.lon_max IS 'Eastern edge of the cell (degrees).';
COMMENT ON COLUMN bi.grid_cells.lat_center IS 'Latitude of the cell centre.';
COMMENT ON COLUMN bi.grid_cells.lon_center IS 'Longitude of the cell centre.';
COMMENT ON COLUMN bi.grid_cells.geojson IS 'The cell polygon as GeoJSON text (lon, lat order).';
