-- Division and citywide forecasts (issue 11): per target week and model, one row per LAPD
-- division (grid.cell_areas) and one 'citywide' row. Rows of a cell model are the sums of
-- its cell forecasts, written in the same transaction as ml.forecasts (crimejob/divisions.py);
-- rows of a volume model (method 'volume_model') forecast the division's total directly.
CREATE TABLE ml.division_forecasts (
    target_week     date NOT NULL CHECK (extract(isodow FROM target_week) = 1),
    model_name      text NOT NULL,
    area_name       text NOT NULL,              -- division name, or 'citywide'
    area_code       integer,                    -- NULL for citywide
    model_version   text NOT NULL,
    is_production   boolean NOT NULL,
    method          text NOT NULL CHECK (method IN ('sum_of_cells', 'volume_model')),
    predicted       double precision NOT NULL CHECK (predicted >= 0),
    predicted_low   integer NOT NULL CHECK (predicted_low >= 0),
    predicted_high  integer NOT NULL,
    dispersion      double precision CHECK (dispersion >= 0),
    cells           integer NOT NULL,
    history_through date NOT NULL,
    horizon_weeks   integer NOT NULL CHECK (horizon_weeks >= 1),
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (target_week, model_name, area_name),
    CHECK (predicted_high >= predicted_low)
);
