-- Production is the champion (issue 8): each weekly forecast step chooses, among every
-- baseline and every network's production version, the contender with the best mean
-- Poisson deviance on recent complete weeks none of them was fitted to
-- (crimejob.champion). Every such decision is a row of ml.promotion_decisions beside
-- the training gate's decisions, with each contender's numbers.

ALTER TABLE ml.promotion_decisions
    ADD COLUMN kind text NOT NULL DEFAULT 'gate' CHECK (kind IN ('gate', 'champion')),
    ADD COLUMN target_week date,           -- champion: the week whose production it chose
    ADD COLUMN history_through date,       -- champion: the newest week of data it used
    ADD COLUMN horizon_weeks integer,      -- champion: weeks from history_through to target_week
    ADD COLUMN champion_model text,        -- champion: the model made production
    ADD COLUMN champion_version text,      -- its version as in ml.forecasts ('baseline' or 'N')
    ADD COLUMN incumbent_model text,       -- champion: production the week before (NULL: none)
    ADD COLUMN incumbent_version text,
    ADD COLUMN diff_vs_incumbent double precision,  -- paired mean (champion - incumbent)
    ADD COLUMN se_vs_incumbent double precision,    -- its standard error (Newey-West)
    ADD COLUMN diff_vs_baseline double precision,   -- paired mean (champion - best baseline)
    ADD COLUMN se_vs_baseline double precision,
    ADD COLUMN margin_se double precision;          -- SEs a challenger must win by
-- A champion may be a baseline, which has no registry version.
ALTER TABLE ml.promotion_decisions ALTER COLUMN version DROP NOT NULL;
ALTER TABLE ml.promotion_decisions ADD CONSTRAINT promotion_decisions_kind_fields CHECK (
    (kind = 'gate' AND version IS NOT NULL)
    OR (kind = 'champion' AND target_week IS NOT NULL AND champion_model IS NOT NULL
        AND champion_version IS NOT NULL)
);
-- One champion decision per target week: a rerun replaces it.
CREATE UNIQUE INDEX promotion_decisions_champion_week
    ON ml.promotion_decisions (target_week) WHERE kind = 'champion';
