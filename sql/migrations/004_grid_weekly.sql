-- One row per cell per week (4,500 a week, zeros included): the model's inputs.
CREATE TABLE grid.weekly (
    week_start     date NOT NULL CHECK (extract(isodow FROM week_start) = 1),
    cell_id        integer NOT NULL REFERENCES grid.cells (cell_id),
    violent_count  integer NOT NULL DEFAULT 0,
    incident_count integer NOT NULL DEFAULT 0,   -- all categories
    mean_temp_f    double precision,             -- IDW of station weekly means
    total_rain_in  double precision,             -- IDW of station weekly totals
    holiday        smallint NOT NULL DEFAULT 0,  -- 1 if a US/CA holiday falls in the week
    PRIMARY KEY (week_start, cell_id)
);

-- One row per aggregated week: totals, which series the counts belong to,
-- and how many stations reported, so gaps and the 2024 break are visible.
CREATE TABLE grid.weeks (
    week_start        date PRIMARY KEY CHECK (extract(isodow FROM week_start) = 1),
    series            text NOT NULL CHECK (series IN ('legacy', 'nibrs')),
    incident_total    integer NOT NULL,
    violent_total     integer NOT NULL,
    legacy_incidents  integer NOT NULL DEFAULT 0,
    nibrs_incidents   integer NOT NULL DEFAULT 0,
    stations_reported integer NOT NULL DEFAULT 0,
    holiday_names     text,
    aggregated_at     timestamptz NOT NULL DEFAULT now()
);
