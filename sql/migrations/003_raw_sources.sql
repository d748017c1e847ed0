-- Source records as fetched, upserted on each source's natural key, raw payload kept.

-- One row per source record: a legacy LAPD report (natural key dr_no) or one
-- NIBRS offense (natural key uniquenibrno, several per incident caseno).
CREATE TABLE raw.crime_records (
    source        text NOT NULL,              -- SODA dataset id, e.g. '2nrs-mtv8'
    record_id     text NOT NULL,              -- natural key: dr_no or uniquenibrno
    incident_id   text NOT NULL,              -- dr_no (legacy) or caseno (NIBRS)
    series        text NOT NULL CHECK (series IN ('legacy', 'nibrs')),
    occurred_at   timestamp NOT NULL,         -- LA local wall-clock time
    reported_at   timestamp NOT NULL,         -- LA local wall-clock time
    week_start    date NOT NULL,              -- Monday of occurred_at
    lat           double precision NOT NULL,
    lon           double precision NOT NULL,
    cell_id       integer NOT NULL REFERENCES grid.cells (cell_id),
    offense_codes text[] NOT NULL,            -- crm_cd, crm_cd_1..4 or nibr_code
    is_violent    boolean NOT NULL,
    payload       jsonb NOT NULL,             -- the record exactly as the source sent it
    loaded_at     timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, record_id)
);
CREATE INDEX crime_records_week_cell ON raw.crime_records (week_start, cell_id);
CREATE INDEX crime_records_reported ON raw.crime_records (reported_at);

-- One incident per (source, incident_id): violent if any of its offenses is.
CREATE VIEW raw.incidents AS
SELECT source,
       incident_id,
       min(series)            AS series,
       min(occurred_at)       AS occurred_at,
       min(reported_at)       AS reported_at,
       min(week_start)        AS week_start,
       min(cell_id)           AS cell_id,
       min(lat)               AS lat,
       min(lon)               AS lon,
       bool_or(is_violent)    AS is_violent,
       count(*)               AS offense_records,
       ARRAY(SELECT DISTINCT code
             FROM unnest(string_to_array(string_agg(array_to_string(offense_codes, ','), ','),
                                         ',')) AS code
             WHERE code <> ''
             ORDER BY code)   AS offense_codes
FROM raw.crime_records
GROUP BY source, incident_id;

-- GHCN-Daily stations: coordinates from configuration or from NCEI responses.
CREATE TABLE raw.weather_stations (
    station_id text PRIMARY KEY,
    name       text,
    lat        double precision NOT NULL,
    lon        double precision NOT NULL,
    elevation  double precision,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- NCEI daily summaries, one row per station and day (deg F, inches).
CREATE TABLE raw.weather_daily (
    station_id text NOT NULL,
    day        date NOT NULL,
    tmax_f     double precision,
    tmin_f     double precision,
    prcp_in    double precision,
    source     text NOT NULL,                 -- 'ncei-api' or 'ncei-csv'
    payload    jsonb NOT NULL,
    loaded_at  timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (station_id, day)
);

-- US federal and California holidays from the `holidays` package.
CREATE TABLE raw.holidays (
    day   date PRIMARY KEY,
    names text NOT NULL
);
