-- What BI dashboards ask most, answered from an index with years of history:
-- the production model's errors of one week, and the scoreboard of the production model.
CREATE INDEX forecast_errors_production_week
    ON ml.forecast_errors (target_week) WHERE is_production;
CREATE INDEX forecast_scores_production_week
    ON ml.forecast_scores (target_week) WHERE is_production;
