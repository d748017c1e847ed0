"""COPY of frames: the binary path stores what the CSV path stores, value for value."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from crimejob import dbcopy
from crimejob.dbcopy import copy_frame

TABLE = """
CREATE TEMPORARY TABLE copied (
    k integer, s smallint, b bigint, f double precision, fi double precision,
    ok boolean, d date, dt date, txt text, n integer
) ON COMMIT DROP
"""


def _frame(rng: np.random.Generator, n: int) -> pd.DataFrame:
    floats = rng.gamma(1.0, 0.1, n) * 10.0 ** rng.integers(-12, 12, n)
    floats[::7] = np.nan
    floats[1 : min(n, 4)] = [-0.0, np.inf, 0.1 + 0.2][: max(0, min(n, 4) - 1)]
    words = np.array(["", "plain", 'a "quoted", comma', "new\nline", "café ✓", "\\"])
    text = pd.Series(words[rng.integers(0, len(words), n)], dtype=object)
    text[::5] = None
    nullable = pd.Series(rng.integers(-5, 5, n)).astype("Int64")
    nullable[::3] = pd.NA
    return pd.DataFrame(
        {
            "k": np.arange(n),
            "s": rng.integers(-300, 300, n).astype(np.int16),
            "b": rng.integers(-(2**40), 2**40, n),
            "f": floats,
            "fi": rng.integers(0, 10, n),
            "ok": rng.random(n) < 0.5,
            "d": date(2022, 1, 3),
            "dt": np.repeat(np.array(["2021-12-27", "1999-12-31"], "datetime64[D]"), n // 2),
            "txt": text,
            "n": nullable,
        }
    )


def _encoded(conn, frame: pd.DataFrame, table: str, columns: list[str]) -> dbcopy.EncodedRows:
    """The rows as copy_frame encodes them (binary is None where it sends CSV)."""
    return dbcopy.encode_rows(frame, columns, dbcopy.column_types(conn, table))


def _copied(engine, frame: pd.DataFrame, binary: bool, monkeypatch) -> list:
    if not binary:
        monkeypatch.setattr(dbcopy, "_binary_rows", lambda *a: None)
    with engine.begin() as conn:
        conn.execute(sa.text(TABLE))
        sent = _encoded(conn, frame, "copied", list(frame.columns)).binary
        assert (sent is not None) == binary
        assert copy_frame(conn, frame, "copied", list(frame.columns)) == len(frame)
        rows = conn.execute(sa.text("SELECT *, f::text AS f_text FROM copied ORDER BY k")).all()
    monkeypatch.undo()
    return rows


def test_binary_copy_stores_what_the_csv_copy_stores(clean_db, monkeypatch):
    frame = _frame(np.random.default_rng(3), 400)
    with clean_db.connect() as conn:
        names = pd.DataFrame({"relname": ["a"]})
        assert _encoded(conn, names, "pg_class", ["relname"]).binary is None  # type name
    binary = _copied(clean_db, frame, True, monkeypatch)
    assert binary == _copied(clean_db, frame, False, monkeypatch)
    assert binary[1].f_text == "-0" and binary[2].f_text == "Infinity"
    assert binary[0].f is None and binary[0].txt is None and binary[0].n is None
    assert {r.txt for r in binary} >= {"", 'a "quoted", comma', "new\nline", "café ✓", "\\"}


def test_long_values_are_copied_value_by_value_and_stored_the_same(clean_db, monkeypatch):
    frame = _frame(np.random.default_rng(5), 300)
    rng = np.random.default_rng(6)
    lengths = rng.integers(0, 400, len(frame))
    frame["txt"] = ['é,"\n' * (k // 4) for k in lengths]
    frame.loc[::9, "txt"] = None
    binary = _copied(clean_db, frame, True, monkeypatch)
    assert binary == _copied(clean_db, frame, False, monkeypatch)
    assert binary[0].txt is None and len(binary[1].txt) == 4 * (lengths[1] // 4)


@pytest.mark.parametrize(
    "column, values",
    [
        ("f", np.array([0.1, 0.7], np.float32)),  # float32 is written as its short text
        ("txt", pd.Series(["a", 1], dtype=object)),  # other objects as their text
        ("txt", pd.Series(["\\N", "b"], dtype=object)),  # read as NULL by the CSV path
        ("d", pd.Series([date(2022, 1, 3), None], dtype=object)),
        ("k", np.array([1.0, 2.0])),  # floats into an integer column: PostgreSQL decides
    ],
)
def test_frames_the_binary_path_does_not_encode_exactly_go_as_csv(clean_db, column, values):
    frame = _frame(np.random.default_rng(4), 2)
    frame[column] = values
    with clean_db.begin() as conn:
        conn.execute(sa.text(TABLE))
        assert _encoded(conn, frame, "copied", list(frame.columns)).binary is None
