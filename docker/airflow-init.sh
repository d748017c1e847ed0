#!/usr/bin/env bash
# One-shot set-up run by the airflow-init service before the other Airflow
# services start. Every command is idempotent, so `docker compose up` can run
# it again on each start.
set -euo pipefail

# 1. Airflow's metadata database (and the Celery result backend tables).
airflow db migrate

# 2. The one-slot pool the train task runs in: one training at a time on the GPU.
airflow pools set gpu 1 "GPU worker: one training at a time"

# 3. The connection the DAG reads the crimejob database from (replaced, so a
#    changed password in .env takes effect on the next start).
airflow connections delete crimejob_db >/dev/null 2>&1 || true
airflow connections add crimejob_db \
    --conn-type postgres \
    --conn-host "${CRIMEJOB_DB_HOST:-postgres}" \
    --conn-port "${CRIMEJOB_DB_PORT:-5432}" \
    --conn-schema crimejob \
    --conn-login crimejob \
    --conn-password "${CRIMEJOB_DB_PASSWORD:?set CRIMEJOB_DB_PASSWORD in .env}"

# 4. The crimejob schema (sql/ migrations; safe to repeat).
CRIMEJOB_DATABASE_URL="postgresql://crimejob:${CRIMEJOB_DB_PASSWORD}@${CRIMEJOB_DB_HOST:-postgres}:${CRIMEJOB_DB_PORT:-5432}/crimejob" \
    crimejob db upgrade

# 5. Shared volumes writable by the airflow user of every worker.
mkdir -p "${CRIMEJOB_MODEL_DIR:-/opt/crimejob/models}" "${CRIMEJOB_DATA_DIR:-/opt/crimejob/data}"
echo "airflow-init: done"
