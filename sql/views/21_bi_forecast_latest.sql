-- Repeatable: dropped and re-created by every `crimejob db upgrade`. Edit this file to change
-- the view. Names and columns are the contract BI tools rely on; new columns go at the end.

CREATE VIEW bi.forecast_latest AS
SELECT *
FROM bi.forecasts
WHERE is_production
  AND target_week = (SELECT max(target_week) FROM ml.forecasts WHERE is_production);
COMMENT ON VIEW bi.forecast_latest IS 'The production forecast for the newest target week: 4,500 ranked cells.';
DO $$
DECLARE col record;
BEGIN
    -- same columns, same meaning as bi.forecasts: copy its column comments
    FOR col IN
        SELECT a.attname, col_description('bi.forecasts'::regclass, a.attnum) AS doc
        FROM pg_attribute AS a
        WHERE a.attrelid = 'bi.forecasts'::regclass AND a.attnum > 0 AND NOT a.attisdropped
    LOOP
        EXECUTE format('COMMENT ON COLUMN bi.forecast_latest.%I IS %L', col.attname, col.doc);
    END LOOP;
END
$$;
