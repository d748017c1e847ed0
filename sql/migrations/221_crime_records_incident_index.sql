-- Issue 13: an incident's records by (series, incident_id), so a week's counts group
-- only the incidents that have a record in that week instead of the whole table.
CREATE INDEX IF NOT EXISTS crime_records_incident ON raw.crime_records (series, incident_id);
