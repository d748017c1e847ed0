-- Issue 13: raw.crime_csv_field (migration 280) made cheap enough for every aggregated
-- record: inlined into the calling query (a STRICT SQL function is not) and splitting the
-- line only when a quote comes before the column.

-- Column n (1-based) of a CSV-imported record's line, as written, NULL when empty; when
-- no quote comes before the end of that column (the first quote has n commas before it),
-- without splitting the line. (cell_areas reads the area this way for every aggregated
-- record.)
CREATE OR REPLACE FUNCTION raw.crime_csv_field(line text, n integer)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE  -- (not STRICT: so it is inlined into the query)
AS $$
    SELECT nullif(
        CASE WHEN strpos(line, '"') = 0
                  OR length(left(line, strpos(line, '"')))
                     - length(replace(left(line, strpos(line, '"')), ',', '')) >= n
             THEN split_part(line, ',', n)
             ELSE (raw.crime_csv_split(line))[n]
        END, '')
$$;
