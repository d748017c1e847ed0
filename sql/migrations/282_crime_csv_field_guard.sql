-- Issue 13: raw.crime_csv_field (migrations 280, 281) tells whether a quote comes before
-- the end of column n with one regular expression that captures nothing (PostgreSQL
-- answers those without backtracking): half the cost of cutting and measuring the line's
-- head, for every aggregated record (crimejob.grid.cell_areas reads the area this way).

CREATE OR REPLACE FUNCTION raw.crime_csv_field(line text, n integer)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
-- Inlined into the calling query: not STRICT, and only immutable functions inside (an
-- integer cast to text; integer || text would be the stable anytextcat).
AS $$
    SELECT nullif(
        CASE WHEN line ~ ('^(?:[^,"]*,){' || (n - 1)::text || '}[^,"]*(,|$)')
             THEN split_part(line, ',', n)
             ELSE (raw.crime_csv_split(line))[n]
        END, '')
$$;
