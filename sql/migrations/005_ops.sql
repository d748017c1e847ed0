-- Records that could not be used, kept with the reason: never silently dropped.
CREATE TABLE ops.rejects (
    reject_id   bigserial PRIMARY KEY,
    source      text NOT NULL,     -- dataset id, 'csv:<file name>', 'ncei-api', 'ncei-csv'
    record_key  text NOT NULL,     -- natural key when the record has one, else md5 of payload
    reason      text NOT NULL,     -- bad_date, missing_location, outside_grid, missing_code, ...
    detail      text,
    payload     jsonb NOT NULL,
    rejected_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (source, record_key, reason)
);
CREATE INDEX rejects_reason ON ops.rejects (reason);

-- Every command and weekly run: what it did, how long each step took, what it counted.
CREATE TABLE ops.runs (
    run_id       bigserial PRIMARY KEY,
    kind         text NOT NULL,    -- 'ingest_crime', 'ingest_weather', 'aggregate', 'weekly', ...
    week_start   date,
    params       jsonb NOT NULL DEFAULT '{}',
    status       text NOT NULL DEFAULT 'running'
                 CHECK (status IN ('running', 'succeeded', 'failed', 'incomplete', 'skipped')),
    counts       jsonb NOT NULL DEFAULT '{}',
    step_seconds jsonb NOT NULL DEFAULT '{}',
    message      text,
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz
);
CREATE INDEX runs_kind_week ON ops.runs (kind, week_start);
