-- Which LAPD division (the records' "area") each grid cell belongs to.
-- Refreshed by every aggregation (crimejob/cell_areas.py): the weeks it aggregates are
-- recounted into grid.weekly_areas, and grid.cell_areas is rebuilt from that small table.

-- Per week and cell: incidents whose records carry each area code. An incident's area is
-- that of its records (the smallest code if they disagree); incidents with no usable
-- area field are not counted here.
CREATE TABLE grid.weekly_areas (
    week_start date NOT NULL CHECK (extract(isodow FROM week_start) = 1),
    cell_id    integer NOT NULL CHECK (cell_id BETWEEN 0 AND 4499),
    area_code  integer NOT NULL CHECK (area_code > 0),
    area_name  text NOT NULL,
    incidents  integer NOT NULL CHECK (incidents > 0),
    PRIMARY KEY (week_start, cell_id, area_code)
);

-- One row per cell LAPD has ever recorded an incident in (with an area): the area most of
-- its incidents carry (ties: the lower code). Cells never recorded have no row: they
-- belong to no division.
CREATE TABLE grid.cell_areas (
    cell_id    integer PRIMARY KEY CHECK (cell_id BETWEEN 0 AND 4499),
    area_code  integer NOT NULL,
    area_name  text NOT NULL,
    incidents  integer NOT NULL CHECK (incidents > 0),
    share      double precision NOT NULL CHECK (share > 0 AND share <= 1)
);
CREATE INDEX cell_areas_area ON grid.cell_areas (area_code);
