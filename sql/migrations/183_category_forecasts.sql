-- The crime-type mix forecast (issue 11, crimejob/typemix.py): per target week and cell,
-- the expected incidents of each category and so the probability that an incident there is
-- of that category, with the category's harm weight (crimejob/severity.py) for severity.
-- Cells with no incident in their history (a zero level) have no rows.
CREATE TABLE ml.category_forecasts (
    target_week      date NOT NULL CHECK (extract(isodow FROM target_week) = 1),
    model_name       text NOT NULL,
    cell_id          integer NOT NULL CHECK (cell_id BETWEEN 0 AND 4499),
    category         text NOT NULL,
    expected         double precision NOT NULL CHECK (expected >= 0),
    probability      double precision NOT NULL CHECK (probability BETWEEN 0 AND 1),
    harm_weight_days integer NOT NULL CHECK (harm_weight_days > 0),
    history_through  date NOT NULL,
    horizon_weeks    integer NOT NULL CHECK (horizon_weeks >= 1),
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (target_week, model_name, cell_id, category)
);
