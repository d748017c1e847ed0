-- The five schemas of the database contract (see ../shared/design/README.md).
CREATE SCHEMA IF NOT EXISTS raw;   -- source records as fetched, keyed on natural keys
CREATE SCHEMA IF NOT EXISTS grid;  -- the 4,500 cells and one row per cell per week
CREATE SCHEMA IF NOT EXISTS ml;    -- model versions, forecasts, errors, scores
CREATE SCHEMA IF NOT EXISTS ops;   -- runs, rejects, migrations
CREATE SCHEMA IF NOT EXISTS bi;    -- the stable, documented interface for BI tools
