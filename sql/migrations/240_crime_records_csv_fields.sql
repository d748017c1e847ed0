-- Issue 13: a record imported from a portal CSV export keeps the export's row as text, and
-- its jsonb payload is built when it is read, not when it is loaded. Building a 28-key
-- jsonb object per row cost about twice a bare COPY of the whole file by itself.
--
-- A record now keeps its source form in exactly one of two ways:
-- - payload:    the record as the SODA API sent it (jsonb, as before);
-- - csv_fields: the export's row, one text per column in the file's order, already in
--               the API's form (dates as floating timestamps, time_occ as four digits,
--               empty fields NULL), with csv_layout naming the SODA field of each position
--               (raw.crime_csv_layouts: one row per distinct header, kept as data).
-- raw.crime_payload() gives the payload of either kind, identical to what the import used
-- to store; raw.crime_record_payloads (sql/views) is every record with its payload.

CREATE TABLE raw.crime_csv_layouts (
    layout_id  serial PRIMARY KEY,
    keys       text[] NOT NULL UNIQUE,        -- SODA field name of each column of the export
    created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE raw.crime_csv_layouts IS
    'The headers of imported portal CSV exports: the SODA field name of each column (raw.crime_records.csv_fields).';

ALTER TABLE raw.crime_records
    ALTER COLUMN payload DROP NOT NULL,
    ADD COLUMN csv_layout integer,            -- raw.crime_csv_layouts (never deleted)
    ADD COLUMN csv_fields text[],
    ADD CONSTRAINT crime_records_source_form
        CHECK (payload IS NOT NULL OR (csv_layout IS NOT NULL AND csv_fields IS NOT NULL));
COMMENT ON COLUMN raw.crime_records.payload IS
    'The record as the SODA API sent it; NULL for a record imported from a CSV export (csv_fields). Read raw.crime_payload() or raw.crime_record_payloads for both.';
COMMENT ON COLUMN raw.crime_records.csv_fields IS
    'A CSV-imported record: the export''s row in the API''s form, one value per column (NULL when empty), named by raw.crime_csv_layouts.keys of csv_layout.';

-- The payload of a record of either kind: the API's jsonb, or the export's row as the
-- jsonb object the API would have sent (empty fields left out).
CREATE FUNCTION raw.crime_payload(payload jsonb, csv_layout integer, csv_fields text[])
RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT coalesce(
        payload,
        (SELECT jsonb_strip_nulls(jsonb_object(l.keys, csv_fields))
         FROM raw.crime_csv_layouts AS l WHERE l.layout_id = csv_layout)
    )
$$;
COMMENT ON FUNCTION raw.crime_payload(jsonb, integer, text[]) IS
    'The source record of a raw.crime_records row as jsonb, whichever way it was loaded.';
