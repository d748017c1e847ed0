"""Bulk writes through PostgreSQL ``COPY``: the fast path for thousands of rows.

Row-by-row INSERTs are too slow for a million-row backfill; instead rows are
copied into a temporary table and merged with one SQL statement.

A frame whose columns are all integers, float64, booleans, dates or text going into
columns of those types is sent in COPY's binary format, built with numpy: formatting
every float as text (pandas' ``to_csv``) and parsing it back was a large part of a
backfill week's forecast and score steps. Any other frame goes as CSV. The rows are
the same either way (tests/test_dbcopy.py).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

_COLUMN_TYPES = sa.text(
    "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
    "WHERE attrelid = CAST(:table AS regclass) AND attnum > 0 AND NOT attisdropped"
)
_INTEGERS = {"smallint": np.int16, "integer": np.int32, "bigint": np.int64}
_POSTGRES_EPOCH = np.datetime64("2000-01-01", "D")
_HEADER = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
_TRAILER = (-1).to_bytes(2, "big", signed=True)
_LONG_VALUES = 64  # bytes a value on average, from which a column is copied value by value


def copy_frame(conn: Connection, frame: pd.DataFrame, table: str, columns: Sequence[str]) -> int:
    """COPY ``frame[columns]`` into ``table`` (CSV, NULL for missing). Returns rows copied.

    Array columns must already be formatted as PostgreSQL array literals and
    JSON columns as JSON text.
    """
    if frame.empty:
        return 0
    return send_rows(conn, encode_rows(frame, columns, column_types(conn, table)), table)


@dataclass(frozen=True)
class EncodedRows:
    """A frame's rows as COPY reads them (binary, or CSV where binary would not store the
    same values), made without a connection: in a thread while the connection is busy
    with another statement, say; :func:`send_rows` sends them."""

    columns: tuple[str, ...]
    rows: int
    binary: bytes | None
    csv: io.StringIO | None


def column_types(conn: Connection, table: str) -> dict[str, str]:
    """Each column's type as ``format_type`` writes it (what :func:`encode_rows` needs)."""
    return dict(conn.execute(_COLUMN_TYPES, {"table": table}).all())


def encode_rows(frame: pd.DataFrame, columns: Sequence[str], types: dict[str, str]) -> EncodedRows:
    """``frame[columns]`` encoded for COPY into columns of ``types``."""
    columns = list(columns)
    binary = _binary_rows(frame, columns, types) if len(frame) else b""
    csv_rows = None if binary is not None else _csv(frame, columns)
    return EncodedRows(tuple(columns), len(frame), binary, csv_rows)


def send_rows(conn: Connection, rows: EncodedRows, table: str) -> int:
    """COPY encoded rows into ``table``; returns the rows copied."""
    if not rows.rows:
        return 0
    cursor = conn.connection.driver_connection.cursor()
    try:
        if rows.binary is not None:
            cursor.copy_expert(
                f"COPY {table} ({', '.join(rows.columns)}) FROM STDIN WITH (FORMAT binary)",
                io.BytesIO(rows.binary),
            )
        else:
            cursor.copy_expert(
                f"COPY {table} ({', '.join(rows.columns)}) FROM STDIN "
                "WITH (FORMAT csv, NULL '\\N')",
                rows.csv,
            )
    finally:
        cursor.close()
    return rows.rows


def read_query(conn: Connection, query: str, params: dict, **read_csv: Any) -> pd.DataFrame:
    """The rows of ``query`` (psycopg2 ``%(name)s`` parameters, bound by the driver)
    through ``COPY ... TO STDOUT`` and pandas' C reader: the same values (floats read back
    exactly, NULL as NaN) without a Python tuple per row, for reads of many thousands."""
    cursor = conn.connection.driver_connection.cursor()
    try:
        bound = cursor.mogrify(query, params).decode()
        buffer = io.BytesIO()
        cursor.copy_expert(f"COPY ({bound}) TO STDOUT WITH (FORMAT csv, HEADER)", buffer)
    finally:
        cursor.close()
    buffer.seek(0)
    return pd.read_csv(buffer, **read_csv)


def _csv(frame: pd.DataFrame, columns: Sequence[str]) -> io.StringIO:
    buffer = io.StringIO()
    frame.loc[:, list(columns)].to_csv(
        buffer, index=False, header=False, na_rep="\\N", quoting=csv.QUOTE_MINIMAL
    )
    buffer.seek(0)
    return buffer


def _binary_rows(frame: pd.DataFrame, columns: list[str], types: dict[str, str]) -> bytes | None:
    fields = []
    for name in columns:
        field = _encode(frame[name], types.get(name))
        if field is None:
            return None
        fields.append(field)
    n = len(frame)
    # per row: a 2-byte field count, then per field a 4-byte length (-1: NULL) and its bytes
    sizes = [np.where(lengths < 0, 0, lengths) for lengths, _ in fields]
    row_size = 2 + sum(4 + s for s in sizes)
    row_start = np.zeros(n, np.int64)
    np.cumsum(row_size[:-1], out=row_start[1:])
    out = np.empty(len(_HEADER) + int(row_size.sum()) + len(_TRAILER), np.uint8)
    out[: len(_HEADER)] = np.frombuffer(_HEADER, np.uint8)
    out[-len(_TRAILER) :] = np.frombuffer(_TRAILER, np.uint8)
    row_start += len(_HEADER)
    count = np.frombuffer(len(columns).to_bytes(2, "big"), np.uint8)
    out[row_start[:, None] + np.arange(2)] = count
    position = row_start + 2
    for (lengths, data), size in zip(fields, sizes, strict=True):
        out[position[:, None] + np.arange(4)] = lengths.astype(">i4").view(np.uint8).reshape(n, 4)
        start = position + 4
        total = int(size.sum())
        first = np.cumsum(size) - size
        if total >= _LONG_VALUES * n:
            # long values (a CSV line): one copy per value beats an index per byte
            target, source = memoryview(out), memoryview(data)
            places = zip(start.tolist(), first.tolist(), size.tolist(), strict=True)
            for at, begin, length in places:
                target[at : at + length] = source[begin : begin + length]
        elif total:
            # each row's bytes at its start: the flat data in row order, scattered
            offset = np.arange(total) - np.repeat(first, size)
            out[np.repeat(start, size) + offset] = data
        position = start + size
    return out.tobytes()


def _encode(column: pd.Series, pg_type: str | None) -> tuple[np.ndarray, np.ndarray] | None:
    """(lengths (n,) with -1 for NULL, the non-NULL values' bytes in row order), or None."""
    dtype = column.dtype
    if pg_type in _INTEGERS:
        if pd.api.types.is_bool_dtype(dtype) or not pd.api.types.is_integer_dtype(dtype):
            return None
        missing = column.isna().to_numpy()
        values = column.to_numpy(dtype=np.int64, na_value=0)[~missing]
        width = _INTEGERS[pg_type]
        info = np.iinfo(width)
        if len(values) and (values.min() < info.min or values.max() > info.max):
            return None  # let PostgreSQL say it is out of range
        return _fixed(missing, values.astype(np.dtype(width).newbyteorder(">")))
    if pg_type == "double precision":
        if dtype == np.float64:
            values = column.to_numpy()
        elif pd.api.types.is_integer_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
            values = column.to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            return None  # float32 is written as its shortest text, not as its float64 value
        missing = np.isnan(values)
        return _fixed(missing, values[~missing].astype(">f8"))
    if pg_type == "boolean":
        if dtype != np.bool_:
            return None
        return _fixed(np.zeros(len(column), bool), column.to_numpy().astype(np.uint8))
    if pg_type == "date":
        days = _days(column)
        if days is None:
            return None
        return _fixed(np.zeros(len(column), bool), days.astype(">i4"))
    if pg_type == "text":
        return _text(column)
    return None


def _fixed(missing: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    width = values.dtype.itemsize
    lengths = np.where(missing, -1, width).astype(np.int64)
    return lengths, np.ascontiguousarray(values).view(np.uint8).ravel()


def _days(column: pd.Series) -> np.ndarray | None:
    """Days since 2000-01-01 of a column of dates (``datetime.date`` objects, or datetimes
    at midnight); None for anything else, a missing value included."""
    if pd.api.types.is_datetime64_dtype(column.dtype):
        values = column.to_numpy()
        if column.isna().any():
            return None
        days = values.astype("datetime64[D]")
        if (days != values).any():
            return None  # a time of day: the CSV path writes it, PostgreSQL decides
        return (days - _POSTGRES_EPOCH).astype(np.int64)
    if column.dtype != object:
        return None
    uniques, codes = _factorize(column)
    if (codes < 0).any() or not all(type(u) is date for u in uniques):
        return None
    unique_days = (np.array(uniques, dtype="datetime64[D]") - _POSTGRES_EPOCH).astype(np.int64)
    return unique_days[codes]


def _text(column: pd.Series) -> tuple[np.ndarray, np.ndarray] | None:
    if not (column.dtype == object or pd.api.types.is_string_dtype(column.dtype)):
        return None
    uniques, codes = _factorize(column)
    if not all(type(u) is str and u != "\\N" for u in uniques):
        return None  # the CSV path writes other objects as their text; "\N" reads as NULL
    encoded = [u.encode("utf-8") for u in uniques]
    if any(b"\x00" in e for e in encoded):
        return None
    unique_lengths = np.array([len(e) for e in encoded], np.int64)
    lengths = np.where(codes < 0, -1, unique_lengths[np.maximum(codes, 0)] if encoded else 0)
    values = b"".join([encoded[code] for code in codes[codes >= 0].tolist()])
    return lengths.astype(np.int64), np.frombuffer(values, np.uint8)


def _factorize(column: pd.Series) -> tuple[list, np.ndarray]:
    """The distinct non-missing values and each row's code (-1: missing)."""
    codes, uniques = pd.factorize(column.astype(object), use_na_sentinel=True)
    return list(uniques), np.asarray(codes, np.int64)
