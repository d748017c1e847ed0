-- Repeatable: re-created by every `crimejob db upgrade`.
--
-- The incidents the models learn from and are scored on: every incident except those
-- made only of police-initiated offenses (raw.police_initiated_codes). Crime found by
-- patrols follows where patrols are sent, which follows the forecast: leaving those
-- records out keeps that loop out of the training data (docs/accountability.md).

CREATE VIEW raw.public_incidents AS
SELECT * FROM raw.incidents WHERE NOT is_police_initiated;
COMMENT ON VIEW raw.public_incidents IS 'raw.incidents less the police-initiated ones: what grid.weekly counts and the models read.';
