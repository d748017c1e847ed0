#!/usr/bin/env bash
# First start of the postgres service only (docker-entrypoint-initdb.d): create
# the two databases, each with its own owner: "airflow" for Airflow's metadata
# and the Celery result backend, "crimejob" for the job's data.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -v airflow_password="$AIRFLOW_DB_PASSWORD" \
    -v crimejob_password="$CRIMEJOB_DB_PASSWORD" <<'SQL'
CREATE ROLE airflow LOGIN PASSWORD :'airflow_password';
CREATE DATABASE airflow OWNER airflow;
CREATE ROLE crimejob LOGIN PASSWORD :'crimejob_password';
CREATE DATABASE crimejob OWNER crimejob;
SQL
