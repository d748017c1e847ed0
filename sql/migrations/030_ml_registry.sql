-- The model registry: every trained version, and every promotion decision with its numbers.

-- One row per trained network version. Baselines are never registered: they
-- have nothing to train and are always available.
CREATE TABLE ml.model_versions (
    model_name         text NOT NULL,                 -- 'rate_cnn', 'seed_cnn', ...
    version            integer NOT NULL CHECK (version > 0),
    parent_version     integer,                       -- the version a fine-tune started from
    mode               text NOT NULL CHECK (mode IN ('retrain', 'finetune')),
    design_hash        text NOT NULL,                 -- architecture hyperparameters; a change forces a retrain
    data_through       date NOT NULL,                 -- the week trained for: history loaded up to it
    trained_through    date NOT NULL,                 -- newest target week the weights were fitted to
    train_first_target date NOT NULL,                 -- the training window (target weeks)
    train_weeks        integer NOT NULL,
    validation_weeks   date[] NOT NULL,               -- time-ordered validation targets (never trained on)
    last_retrain_week  date NOT NULL,                 -- data_through of the retrain this lineage started from
    hyperparameters    jsonb NOT NULL,
    fit                jsonb NOT NULL,                -- epochs run, best validation loss, seconds
    validation         jsonb NOT NULL,                -- mean metrics on validation_weeks
    artifact_path      text NOT NULL,                 -- the .keras file
    promoted           boolean NOT NULL DEFAULT false,
    promoted_at        timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (model_name, version),
    FOREIGN KEY (model_name, parent_version) REFERENCES ml.model_versions (model_name, version)
);
CREATE INDEX model_versions_week ON ml.model_versions (model_name, data_through);

-- One row per gate decision: the candidate against the production version and
-- the best baseline, on the same validation weeks, by Poisson deviance.
CREATE TABLE ml.promotion_decisions (
    decision_id        bigserial PRIMARY KEY,
    model_name         text NOT NULL,
    version            integer NOT NULL,
    promoted           boolean NOT NULL,
    reason             text NOT NULL,
    metric             text NOT NULL,                 -- the gate metric, lower is better
    gate_weeks         date[] NOT NULL,
    candidate_score    double precision,
    production_version integer,
    production_score   double precision,
    baseline_name      text,
    baseline_score     double precision,
    details            jsonb NOT NULL,                -- every contender's mean metrics on gate_weeks
    decided_at         timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (model_name, version) REFERENCES ml.model_versions (model_name, version)
);

-- The production version of each model: the newest promoted one.
CREATE VIEW ml.production_versions AS
SELECT DISTINCT ON (model_name) *
FROM ml.model_versions
WHERE promoted
ORDER BY model_name, version DESC;
