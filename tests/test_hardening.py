"""Issue 13: what an attacker or a careless operator tried, and how the job must answer.

Each test is one class of failure found by trying: bad files, bad arguments, killed or
concurrent runs, the BI role's limits. Answers are one-line errors (exit 1 or 2),
rejects with a reason, or a run that converges; never a traceback, never input as SQL.
"""

from __future__ import annotations

from datetime import date

import pandas as pd
import sqlalchemy as sa

from crimejob.crime_ingest import ingest_crime_csv
from tests.fakes.soda import legacy_frame, write_portal_csv

WEEK = (date(2023, 1, 2), date(2023, 1, 8))


def _rows(engine, sql: str, **params) -> list:
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), params).all()


# --- 1. header text never reaches SQL as code -------------------------------------

STOLEN = 'x",(select/**/rolname/**/from/**/pg_authid/**/limit/**/1)as"stolen'


def test_a_crafted_csv_header_is_kept_as_data_and_never_runs_as_sql(clean_db, tmp_path):
    frame = legacy_frame(20, *WEEK, seed=31)
    path = write_portal_csv(frame, tmp_path / "export.csv")
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    table[STOLEN] = "kept"
    table["Weird 'Col' %s"] = "also kept"
    table.to_csv(path, index=False)

    report = ingest_crime_csv(clean_db, path)

    assert report.loaded == 20
    keys = _rows(
        clean_db, "SELECT DISTINCT jsonb_object_keys(payload) FROM raw.crime_records"
    )
    keys = {k for (k,) in keys}
    assert "stolen" not in keys
    assert STOLEN in keys and "weird_'col'_%s" in keys
    values = _rows(
        clean_db, "SELECT DISTINCT payload ->> :k FROM raw.crime_records", k=STOLEN
    )
    assert values == [("kept",)]
