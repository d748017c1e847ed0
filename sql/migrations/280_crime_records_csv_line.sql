-- Issue 13 (bulk import speed): a record imported from a portal CSV export keeps the
-- export's line exactly as written (csv_line), and everything else is derived from it on
-- read. The client sends each stored row whole in one binary COPY (the mapped columns and
-- the line), so the import writes every row once instead of staging the file in
-- PostgreSQL and copying it a second time into raw.crime_records.
--
-- A record now keeps its source form in one of three ways:
-- - payload:    the record as the SODA API sent it (jsonb);
-- - csv_line:   the export's line as written (since this migration), its columns named by
--               csv_layout (raw.crime_csv_layouts.keys);
-- - csv_fields: the export's row as a text[] in the API's form (migration 240; rows
--               imported between migrations 240 and 280 keep it).
-- raw.crime_payload(payload, csv_layout, csv_fields, csv_line) gives the payload of any of
-- them, identical to what the import stored before migration 240.

ALTER TABLE raw.crime_records
    ADD COLUMN csv_line text,
    DROP CONSTRAINT crime_records_source_form,
    ADD CONSTRAINT crime_records_source_form
        CHECK (payload IS NOT NULL
               OR (csv_layout IS NOT NULL AND (csv_fields IS NOT NULL OR csv_line IS NOT NULL)));
COMMENT ON COLUMN raw.crime_records.csv_line IS
    'A CSV-imported record: the export''s line exactly as written (one CSV record, no line end), its columns named by raw.crime_csv_layouts.keys of csv_layout. Read raw.crime_payload() or raw.crime_record_payloads for the payload.';

-- The fields of one CSV record as written, '' for an empty field, the way PostgreSQL's
-- COPY (FORMAT csv, FORCE_NOT_NULL) reads them: a double quote opens or closes a quoted
-- part, in which commas and line ends are text and a doubled quote is one quote. Split
-- on the quotes first: the odd pieces are outside quotes (their commas separate fields),
-- the even ones inside; an empty piece between two quoted parts is a doubled quote.
CREATE FUNCTION raw.crime_csv_split(line text)
RETURNS text[]
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $$
DECLARE
    pieces text[];
    joined text := '';
    sep constant text := E'\x1f';  -- a unit separator stands for the separating commas
BEGIN
    IF strpos(line, '"') = 0 THEN
        RETURN string_to_array(line, ',');
    END IF;
    IF strpos(line, sep) > 0 THEN
        RAISE EXCEPTION 'raw.crime_csv_split: a line holding a unit separator (0x1F)';
    END IF;
    pieces := string_to_array(line, '"');
    FOR i IN 1 .. cardinality(pieces) LOOP
        IF i % 2 = 0 THEN
            joined := joined || pieces[i];
        ELSIF pieces[i] = '' AND i > 1 AND i < cardinality(pieces) THEN
            joined := joined || '"';
        ELSE
            joined := joined || replace(pieces[i], ',', sep);
        END IF;
    END LOOP;
    RETURN string_to_array(joined, sep);
END
$$;
COMMENT ON FUNCTION raw.crime_csv_split(text) IS
    'The fields of a CSV line as written ('''' for an empty field), e.g. raw.crime_records.csv_line.';

-- A portal export's date ("03/01/2020 12:00:00 AM", "11/6/2022 0:00", "11/6/2022", or ISO
-- 8601) as the SODA API writes it ("2020-03-01T00:00:00.000"), the way the import's
-- parser reads it (crimejob.ingest.sources.lapd.parse_timestamps); NULL if it is none.
CREATE FUNCTION raw.crime_csv_timestamp(value text)
RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $$
DECLARE
    t constant text := btrim(value, E' \t\r\n');
    api constant text := 'YYYY-MM-DD"T"HH24:MI:SS.MS';
    day text;
    clock text;
    hours integer;
BEGIN
    -- (shapes tested with ~ alone and fields taken with split_part: regular expressions
    -- that capture cost tens of microseconds a call)
    IF t ~ '^[0-9]{1,2}/[0-9]{1,2}/[0-9]{4}( +[0-9]{1,2}:[0-9]{1,2}(:[0-9]{1,2})?( *[AaPp][Mm])?)?$' THEN
        day := split_part(t, ' ', 1);
        clock := btrim(substr(t, length(day) + 1), ' ');
        hours := coalesce(nullif(split_part(clock, ':', 1), '')::integer, 0);
        IF clock ~* '[ap]m$' THEN
            hours := hours % 12 + CASE WHEN clock ~* 'pm$' THEN 12 ELSE 0 END;
            clock := rtrim(left(clock, -2), ' ');
        END IF;
        RETURN to_char(make_timestamp(
            split_part(day, '/', 3)::integer, split_part(day, '/', 1)::integer,
            split_part(day, '/', 2)::integer, hours,
            coalesce(nullif(split_part(clock, ':', 2), '')::integer, 0),
            coalesce(nullif(split_part(clock, ':', 3), '')::integer, 0)), api);
    ELSIF t ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?)?$' THEN
        RETURN to_char(t::timestamp, api);
    ELSIF t ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?(Z|[+-][0-9]{2}(:?[0-9]{2})?)$' THEN
        RETURN to_char(t::timestamptz AT TIME ZONE 'America/Los_Angeles', api);
    END IF;
    RETURN NULL;
END
$$;

-- The export's fields in the API's form, the way migration 240's import stored them in
-- csv_fields: empty fields NULL, date_rptd and date_occ as floating timestamps, time_occ
-- as four digits (each conversion at the first column of that name only).
CREATE FUNCTION raw.crime_csv_api_form(keys text[], fields text[])
RETURNS text[]
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $$
DECLARE
    f text[] := array_replace(fields, '', NULL);
    i integer;
BEGIN
    i := array_position(keys, 'date_rptd');
    IF f[i] IS NOT NULL THEN f[i] := raw.crime_csv_timestamp(f[i]); END IF;
    i := array_position(keys, 'date_occ');
    IF f[i] IS NOT NULL THEN f[i] := raw.crime_csv_timestamp(f[i]); END IF;
    i := array_position(keys, 'time_occ');
    IF length(f[i]) BETWEEN 1 AND 3 THEN f[i] := lpad(f[i], 4, '0'); END IF;
    RETURN f;
END
$$;

-- The payload of a record of any kind: the API's jsonb, or the export's row (csv_fields or
-- csv_line) as the jsonb object the API would have sent (empty fields left out).
CREATE FUNCTION raw.crime_payload(payload jsonb, csv_layout integer, csv_fields text[],
                                  csv_line text)
RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT coalesce(
        payload,
        (SELECT jsonb_strip_nulls(jsonb_object(
                    l.keys,
                    coalesce(csv_fields,
                             raw.crime_csv_api_form(l.keys, raw.crime_csv_split(csv_line)))))
         FROM raw.crime_csv_layouts AS l WHERE l.layout_id = csv_layout)
    )
$$;
COMMENT ON FUNCTION raw.crime_payload(jsonb, integer, text[], text) IS
    'The source record of a raw.crime_records row as jsonb, whichever way it was loaded.';

-- Column n (1-based) of a CSV-imported record's line, as written, without
-- splitting the rest when no quote comes before it; NULL when empty.
CREATE FUNCTION raw.crime_csv_field(line text, n integer)
RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
    SELECT nullif(
        CASE WHEN strpos(line, '"') = 0
                  OR strpos(line, '"') > length(array_to_string(
                         (string_to_array(line, ','))[1:n], ',')) + 1
             THEN split_part(line, ',', n)
             ELSE (raw.crime_csv_split(line))[n]
        END, '')
$$;
