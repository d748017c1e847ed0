-- Forecasts, their per-cell errors and weekly scores, for the production model
-- and for every baseline, so the scoreboard shows whether the model earns its place.

-- One forecast per target week and model: all 4,500 cells, replaced atomically on rerun.
CREATE TABLE ml.forecasts (
    target_week     date NOT NULL CHECK (extract(isodow FROM target_week) = 1),
    model_name      text NOT NULL,
    cell_id         integer NOT NULL REFERENCES grid.cells (cell_id),
    model_version   text NOT NULL,
    predicted       double precision NOT NULL CHECK (predicted >= 0),
    rank            integer NOT NULL CHECK (rank BETWEEN 1 AND 4500),
    is_production   boolean NOT NULL,
    history_through date NOT NULL,
    run_id          bigint,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (target_week, model_name, cell_id),
    CHECK (history_through < target_week)
);
CREATE INDEX forecasts_production_week ON ml.forecasts (target_week) WHERE is_production;

-- Per-cell error of a forecast once its target week has happened.
CREATE TABLE ml.forecast_errors (
    target_week   date NOT NULL,
    model_name    text NOT NULL,
    cell_id       integer NOT NULL REFERENCES grid.cells (cell_id),
    model_version text NOT NULL,
    is_production boolean NOT NULL,
    predicted     double precision NOT NULL,
    actual        integer NOT NULL,
    error         double precision NOT NULL,  -- predicted - actual
    scored_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (target_week, model_name, cell_id)
);

-- The week's summary metrics per model (see crimejob/metrics.py for definitions).
CREATE TABLE ml.forecast_scores (
    target_week             date NOT NULL,
    model_name              text NOT NULL,
    model_version           text NOT NULL,
    is_production           boolean NOT NULL,
    mae                     double precision NOT NULL,
    rmse                    double precision NOT NULL,
    poisson_deviance        double precision NOT NULL,
    mae_active              double precision,
    rmse_active             double precision,
    poisson_deviance_active double precision,
    hit_rate_1pct           double precision,
    pai_1pct                double precision,
    pei_1pct                double precision,
    hit_rate_5pct           double precision,
    pai_5pct                double precision,
    pei_5pct                double precision,
    actual_total            integer NOT NULL,
    predicted_total         double precision NOT NULL,
    active_cells            integer NOT NULL,
    scored_at               timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (target_week, model_name)
);
