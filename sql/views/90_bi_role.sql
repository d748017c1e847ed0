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
-- Views added to bi later become readable too.
ALTER DEFAULT PRIVILEGES IN SCHEMA bi GRANT SELECT ON TABLES TO crimejob_bi;
DO $$
BEGIN
    EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO crimejob_bi', current_database());
END
$$;

-- No large objects: they are storage outside every schema's grants (a BI login could
-- fill the disk with lo_from_bytea). The lo_* functions are PUBLIC by default, so they
-- are revoked from PUBLIC; crimejob itself uses none. (A non-owner running this gets a
-- warning and nothing changes: run `crimejob db upgrade` as the database owner.)
REVOKE EXECUTE ON FUNCTION
    lo_creat(integer), lo_create(oid), lo_from_bytea(oid, bytea), lo_import(text),
    lo_import(text, oid), lo_put(oid, bigint, bytea), lowrite(integer, bytea),
    lo_open(oid, integer), lo_truncate(integer, integer), lo_truncate64(integer, bigint)
FROM PUBLIC;

-- Limits: a dashboard query may run a minute, an idle transaction may hold its
-- snapshot five minutes, and twenty sessions at most.
DO $$
BEGIN
    ALTER ROLE crimejob_bi SET statement_timeout = '60s';
    ALTER ROLE crimejob_bi SET idle_in_transaction_session_timeout = '5min';
    ALTER ROLE crimejob_bi SET lock_timeout = '10s';
    ALTER ROLE crimejob_bi CONNECTION LIMIT 20;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE WARNING 'crimejob_bi keeps its limits as they were: % (run db upgrade as a role that may alter crimejob_bi)', SQLERRM;
END
$$;
