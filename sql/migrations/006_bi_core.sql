-- bi: the stable interface for BI tools. Names and columns are a contract.

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

CREATE VIEW bi.weekly_counts AS
SELECT w.week_start, w.cell_id, w.violent_count, w.incident_count,
       w.mean_temp_f, w.total_rain_in, w.holiday, wk.series,
       c.lat_center, c.lon_center
FROM grid.weekly AS w
JOIN grid.cells AS c USING (cell_id)
LEFT JOIN grid.weeks AS wk USING (week_start);
COMMENT ON VIEW bi.weekly_counts IS 'One row per cell and aggregated week, zeros included.';
COMMENT ON COLUMN bi.weekly_counts.week_start IS 'Monday that starts the week (America/Los_Angeles).';
COMMENT ON COLUMN bi.weekly_counts.cell_id IS 'Grid cell, see bi.grid_cells.';
COMMENT ON COLUMN bi.weekly_counts.violent_count IS 'Violent incidents (FBI Part I violent) that occurred in the cell that week.';
COMMENT ON COLUMN bi.weekly_counts.incident_count IS 'All incidents that occurred in the cell that week.';
COMMENT ON COLUMN bi.weekly_counts.mean_temp_f IS 'Mean daily temperature (deg F), stations interpolated by inverse distance weighting.';
COMMENT ON COLUMN bi.weekly_counts.total_rain_in IS 'Total precipitation (inches), stations interpolated by inverse distance weighting.';
COMMENT ON COLUMN bi.weekly_counts.holiday IS '1 if a US federal or California holiday falls in the week.';
COMMENT ON COLUMN bi.weekly_counts.series IS 'legacy (LAPD before NIBRS) or nibrs: counts across the 2024-03-07 break are different series.';
COMMENT ON COLUMN bi.weekly_counts.lat_center IS 'Latitude of the cell centre.';
COMMENT ON COLUMN bi.weekly_counts.lon_center IS 'Longitude of the cell centre.';
