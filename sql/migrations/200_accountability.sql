-- Issue 12: uncertainty, honest hotspots, error by area, stability, model cards.
-- Definitions: crimejob/uncertainty.py (predictive distribution), crimejob/metrics.py
-- (flags, ties, zero forecasts), crimejob/area_scores.py (per division, disparity).

-- Each cell's predictive distribution and its flags. Forecasts written before this
-- migration keep NULL here (their rank ties were broken by cell_id).
ALTER TABLE ml.forecasts
    ADD COLUMN prob_any       double precision CHECK (prob_any BETWEEN 0 AND 1),
    ADD COLUMN predicted_low  integer CHECK (predicted_low >= 0),
    ADD COLUMN predicted_high integer,
    ADD COLUMN dispersion     double precision CHECK (dispersion >= 0),
    ADD COLUMN flag_1pct      double precision CHECK (flag_1pct BETWEEN 0 AND 1),
    ADD COLUMN flag_5pct      double precision CHECK (flag_5pct BETWEEN 0 AND 1),
    ADD CONSTRAINT forecasts_interval_ordered CHECK (predicted_high >= predicted_low);

-- Stability, coverage and disparity across divisions, per model and week.
ALTER TABLE ml.forecast_scores
    ADD COLUMN jaccard_1pct          double precision,
    ADD COLUMN jaccard_5pct          double precision,
    ADD COLUMN coverage_90           double precision,
    ADD COLUMN pit_coverage_90       double precision,
    ADD COLUMN coverage_90_active    double precision,
    ADD COLUMN dispersion            double precision,
    ADD COLUMN area_pei_5pct_spread  double precision,
    ADD COLUMN area_deviance_spread  double precision,
    ADD COLUMN area_worst_deviance   text;

-- The week's error in each LAPD division (grid.cell_areas), per model.
CREATE TABLE ml.forecast_scores_by_area (
    target_week      date NOT NULL,
    model_name       text NOT NULL,
    area_code        integer NOT NULL,
    area_name        text NOT NULL,
    model_version    text NOT NULL,
    is_production    boolean NOT NULL,
    cells            integer NOT NULL CHECK (cells > 0),
    mae              double precision NOT NULL,
    poisson_deviance double precision NOT NULL,
    hit_rate_5pct    double precision,
    pai_5pct         double precision,
    pei_5pct         double precision,
    actual_total     integer NOT NULL,
    predicted_total  double precision NOT NULL,
    coverage_90      double precision,
    scored_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (target_week, model_name, area_code)
);
CREATE INDEX forecast_scores_by_area_production
    ON ml.forecast_scores_by_area (target_week) WHERE is_production;

-- A model card per production version, regenerated on every promotion.
CREATE TABLE ml.model_cards (
    model_name    text NOT NULL,
    model_version text NOT NULL,          -- registry version, or 'baseline'
    card          text NOT NULL,          -- Markdown
    path          text,                   -- the file written beside the version's artifact
    generated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (model_name, model_version)
);
