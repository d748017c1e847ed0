"""Bulk writes through PostgreSQL ``COPY``: the fast path for thousands of rows.

Row-by-row INSERTs are too slow for a million-row backfill; instead rows are
copied into a temporary table and merged with one SQL statement.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

import pandas as pd
from sqlalchemy.engine import Connection


def copy_frame(conn: Connection, frame: pd.DataFrame, table: str, columns: Sequence[str]) -> int:
    """COPY ``frame[columns]`` into ``table`` (CSV, NULL for missing). Returns rows copied.

    Array columns must already be formatted as PostgreSQL array literals and
    JSON columns as JSON text.
    """
    if frame.empty:
        return 0
    buffer = io.StringIO()
    frame.loc[:, list(columns)].to_csv(
        buffer, index=False, header=False, na_rep="\\N", quoting=csv.QUOTE_MINIMAL
    )
    buffer.seek(0)
    cursor = conn.connection.driver_connection.cursor()
    try:
        cursor.copy_expert(
            f"COPY {table} ({', '.join(columns)}) FROM STDIN WITH (FORMAT csv, NULL '\\N')",
            buffer,
        )
    finally:
        cursor.close()
    return len(frame)

