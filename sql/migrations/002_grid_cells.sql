-- The 60 x 75 grid over the City of Los Angeles. Same formula as crimejob/grid.py:
-- row 0 is the northern edge, column 0 the western edge, cell_id = row * 75 + col.
CREATE TABLE grid.cells (
    cell_id    integer PRIMARY KEY CHECK (cell_id BETWEEN 0 AND 4499),
    row        integer NOT NULL CHECK (row BETWEEN 0 AND 59),
    col        integer NOT NULL CHECK (col BETWEEN 0 AND 74),
    lat_min    double precision NOT NULL,
    lat_max    double precision NOT NULL,
    lon_min    double precision NOT NULL,
    lon_max    double precision NOT NULL,
    lat_center double precision NOT NULL,
    lon_center double precision NOT NULL,
    geojson    text NOT NULL,
    UNIQUE (row, col)
);

INSERT INTO grid.cells (cell_id, row, col, lat_min, lat_max, lon_min, lon_max,
                        lat_center, lon_center, geojson)
SELECT c.cell_id, c.row, c.col, c.lat_min, c.lat_max, c.lon_min, c.lon_max,
       (c.lat_min + c.lat_max) / 2, (c.lon_min + c.lon_max) / 2,
       json_build_object(
           'type', 'Polygon',
           'coordinates', json_build_array(json_build_array(
               json_build_array(c.lon_min, c.lat_min), json_build_array(c.lon_max, c.lat_min),
               json_build_array(c.lon_max, c.lat_max), json_build_array(c.lon_min, c.lat_max),
               json_build_array(c.lon_min, c.lat_min))))::text
FROM (
    SELECT r * 75 + k AS cell_id, r AS row, k AS col,
           34.3373::float8 - (r + 1) * ((34.3373::float8 - 33.7037::float8) / 60) AS lat_min,
           34.3373::float8 - r * ((34.3373::float8 - 33.7037::float8) / 60)       AS lat_max,
           -118.6682::float8 + k * ((-118.1553::float8 + 118.6682::float8) / 75)  AS lon_min,
           -118.6682::float8 + (k + 1) * ((-118.1553::float8 + 118.6682::float8) / 75) AS lon_max
    FROM generate_series(0, 59) AS r, generate_series(0, 74) AS k
) AS c;
