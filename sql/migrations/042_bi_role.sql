-- crimejob_bi: the role BI tools log in as. It may read the bi schema and nothing
-- else: no raw, grid, ml or ops tables, no writes, no objects of its own.
-- Roles are cluster-wide, so create it only where it does not exist yet.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'crimejob_bi') THEN
        CREATE ROLE crimejob_bi LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT;
    END IF;
END
$$;

REVOKE ALL ON SCHEMA raw, grid, ml, ops FROM PUBLIC;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM crimejob_bi;
GRANT USAGE ON SCHEMA bi TO crimejob_bi;
GRANT SELECT ON ALL TABLES IN SCHEMA bi TO crimejob_bi;
-- Views added to bi by later migrations become readable too.
ALTER DEFAULT PRIVILEGES IN SCHEMA bi GRANT SELECT ON TABLES TO crimejob_bi;
DO $$
BEGIN
    EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO crimejob_bi', current_database());
END
$$;
