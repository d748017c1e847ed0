-- Offense codes that only arise from police activity (issue 12, after Ensign et al.):
-- an incident all of whose offenses are such codes was found by the police, not reported
-- by the public, and training on it would let patrol placement feed the forecast.
-- The models read raw.public_incidents (sql/views/06_raw_public_incidents.sql), which leaves
-- these incidents out; raw.incidents keeps them, and grid.weeks counts them per week.
-- Add a code with a new migration (INSERT ... ON CONFLICT DO NOTHING).
CREATE TABLE raw.police_initiated_codes (
    series      text NOT NULL CHECK (series IN ('legacy', 'nibrs')),
    code        text NOT NULL,
    description text NOT NULL,
    PRIMARY KEY (series, code)
);
COMMENT ON TABLE raw.police_initiated_codes IS
    'Offense codes that arise only from police activity; incidents made only of them are not modelled.';

-- The legacy LAPD codes present in the real code list (lapd_crm_cd_descriptions) whose
-- description names the police as victim or the offense as one against police orders.
-- NIBRS offense codes (13A, 90Z, ...) do not say who initiated the contact: no NIBRS row.
INSERT INTO raw.police_initiated_codes (series, code, description) VALUES
    ('legacy', '231', 'ASSAULT WITH DEADLY WEAPON ON POLICE OFFICER'),
    ('legacy', '623', 'BATTERY POLICE (SIMPLE)'),
    ('legacy', '437', 'RESISTING ARREST'),
    ('legacy', '884', 'FAILURE TO DISPERSE'),
    ('legacy', '890', 'FAILURE TO YIELD');

ALTER TABLE grid.weeks ADD COLUMN police_initiated integer NOT NULL DEFAULT 0;
COMMENT ON COLUMN grid.weeks.police_initiated IS
    'Incidents of the week made only of police-initiated codes (raw.police_initiated_codes): not counted in incident_total or violent_total.';
