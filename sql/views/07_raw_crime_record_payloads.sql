-- Repeatable: re-created by every `crimejob db upgrade`.
--
-- Every crime record with its payload, the record as the source published it, built on
-- read for records imported from a CSV export (migration 280 keeps their line as written;
-- migration 240 kept their fields).
-- Read payloads here (or with raw.crime_payload()), not from raw.crime_records.payload,
-- which is NULL for CSV-imported records.

CREATE VIEW raw.crime_record_payloads AS
SELECT r.source,
       r.record_id,
       r.series,
       r.week_start,
       coalesce(r.payload,
                jsonb_strip_nulls(jsonb_object(
                    l.keys,
                    coalesce(r.csv_fields,
                             raw.crime_csv_api_form(l.keys, raw.crime_csv_split(r.csv_line))))))
           AS payload
FROM raw.crime_records AS r
LEFT JOIN raw.crime_csv_layouts AS l ON l.layout_id = r.csv_layout;
COMMENT ON VIEW raw.crime_record_payloads IS 'Every crime record with its source payload (jsonb), whether the API or a CSV export loaded it.';
COMMENT ON COLUMN raw.crime_record_payloads.payload IS 'The record as the source published it: SODA field names, empty fields left out, dates as floating timestamps.';
