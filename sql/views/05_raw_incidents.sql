-- Repeatable: dropped and re-created by every `crimejob db upgrade` (it replaces the view
-- migration 003 created). Edit this file to change the view.
--
-- One incident per series and incident number: the legacy report (dr_no), or the NIBRS case
-- (caseno) with all its offenses, whichever NIBRS dataset published them. LAPD moved the
-- 2024-2025 NIBRS rows of y8y3-fqfu into k7nn-b2ep in August 2026, so a database that read
-- both holds the same offenses twice; grouping by caseno, not by dataset, counts each once.
-- An incident is violent if any of its offenses is.

CREATE VIEW raw.incidents AS
SELECT min(source)            AS source,
       incident_id,
       series,
       min(occurred_at)       AS occurred_at,
       min(reported_at)       AS reported_at,
       min(week_start)        AS week_start,
       min(cell_id)           AS cell_id,
       min(lat)               AS lat,
       min(lon)               AS lon,
       bool_or(is_violent)    AS is_violent,
       count(DISTINCT record_id) AS offense_records,
       -- police-initiated: every offense of the incident is a code that only police
       -- activity brings (raw.police_initiated_codes); such incidents are not modelled
       -- (uncorrelated subqueries: evaluated once per query, not per record)
       bool_and(offense_codes <@ CASE series
                    WHEN 'legacy' THEN (SELECT coalesce(array_agg(code), '{}')
                                        FROM raw.police_initiated_codes WHERE series = 'legacy')
                    ELSE (SELECT coalesce(array_agg(code), '{}')
                          FROM raw.police_initiated_codes WHERE series = 'nibrs') END
                AND cardinality(offense_codes) > 0)
                              AS is_police_initiated,
       ARRAY(SELECT DISTINCT code
             FROM unnest(string_to_array(string_agg(array_to_string(offense_codes, ','), ','),
                                         ',')) AS code
             WHERE code <> ''
             ORDER BY code)   AS offense_codes
FROM raw.crime_records
GROUP BY series, incident_id;
COMMENT ON VIEW raw.incidents IS 'One row per incident (legacy dr_no or NIBRS caseno, per series): violent if any offense is.';
COMMENT ON COLUMN raw.incidents.source IS 'SODA dataset of the incident''s records (the first by name when two datasets hold it).';
COMMENT ON COLUMN raw.incidents.incident_id IS 'dr_no (legacy) or caseno (NIBRS).';
COMMENT ON COLUMN raw.incidents.series IS 'legacy or nibrs: different series, see grid.weeks for the mix per week.';
COMMENT ON COLUMN raw.incidents.occurred_at IS 'Earliest occurrence of its offenses (LA wall clock).';
COMMENT ON COLUMN raw.incidents.reported_at IS 'Earliest report of its offenses (LA wall clock).';
COMMENT ON COLUMN raw.incidents.week_start IS 'Monday of the week it occurred in.';
COMMENT ON COLUMN raw.incidents.cell_id IS 'Grid cell of the incident.';
COMMENT ON COLUMN raw.incidents.lat IS 'Latitude as published.';
COMMENT ON COLUMN raw.incidents.lon IS 'Longitude as published.';
COMMENT ON COLUMN raw.incidents.is_violent IS 'True if any offense is violent (legacy crm_cd or NIBRS 09A, 11A-11C, 120, 13A).';
COMMENT ON COLUMN raw.incidents.is_police_initiated IS 'True if every offense code is police-initiated (raw.police_initiated_codes, e.g. legacy 231, 623, 437): left out of the modelled counts.';
COMMENT ON COLUMN raw.incidents.offense_records IS 'Distinct offense records (uniquenibrno) of the incident; 1 for a legacy report.';
COMMENT ON COLUMN raw.incidents.offense_codes IS 'Distinct offense codes of the incident, sorted.';
