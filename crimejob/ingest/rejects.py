"""Records the job cannot use, kept in ``ops.rejects`` with the reason: nothing is lost.

Rejects are keyed on (source, record key, reason), so re-running an ingest
over the same records adds no duplicates.
"""

from __future__ import annotations

import hashlib
import json

import pandas as pd
from sqlalchemy.engine import Connection

from crimejob.dbcopy import copy_frame

# Reasons shared by every source; a source may add its own (short snake_case).
BAD_DATE = "bad_date"
MISSING_LOCATION = "missing_location"
OUTSIDE_GRID = "outside_grid"
MISSING_CODE = "missing_code"
UNKNOWN_CODE = "unknown_code"
MISSING_KEY = "missing_key"
BAD_VALUE = "bad_value"


def payload_key(payload: dict) -> str:
    """A stable key for a record with no natural key: md5 of its canonical JSON."""
    return hashlib.md5(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def store_rejects(conn: Connection, rejects: pd.DataFrame) -> int:
    """Store rejects (columns source, record_key, reason, detail, payload as dict or JSON text).

    Returns how many were new. Runs inside the caller's transaction, so rejects
    commit together with the records loaded beside them.
    """
    if rejects.empty:
        return 0
    frame = rejects.copy()
    frame["payload"] = [
        p if isinstance(p, str) else json.dumps(p, default=str) for p in frame["payload"]
    ]
    if "detail" not in frame:
        frame["detail"] = None
    frame = frame.drop_duplicates(["source", "record_key", "reason"])
    conn.exec_driver_sql(
        "CREATE TEMP TABLE IF NOT EXISTS _rejects_in "
        "(source text, record_key text, reason text, detail text, payload jsonb) ON COMMIT DROP"
    )
    conn.exec_driver_sql("TRUNCATE _rejects_in")
    copy_frame(conn, frame, "_rejects_in", ["source", "record_key", "reason", "detail", "payload"])
    result = conn.exec_driver_sql(
        "INSERT INTO ops.rejects (source, record_key, reason, detail, payload) "
        "SELECT source, record_key, reason, detail, payload FROM _rejects_in "
        "ON CONFLICT (source, record_key, reason) DO UPDATE "
        "SET detail = EXCLUDED.detail, payload = EXCLUDED.payload "
        "WHERE ops.rejects.payload IS DISTINCT FROM EXCLUDED.payload"
    )
    return result.rowcount
