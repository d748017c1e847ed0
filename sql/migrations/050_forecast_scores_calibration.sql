-- The scoreboard gains the 10% area budget and calibration: the week's expected
-- incidents against the actual ones (see crimejob/metrics.py for definitions).
ALTER TABLE ml.forecast_scores
    ADD COLUMN hit_rate_10pct double precision,
    ADD COLUMN pai_10pct      double precision,
    ADD COLUMN pei_10pct      double precision,
    ADD COLUMN mass_ratio     double precision;
