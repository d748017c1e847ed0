"""Crime categories: one mapping for both code systems, counted per cell and week."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from crimejob.grid import category_counts
from crimejob.grid import cells as grid
from crimejob.grid.aggregate import aggregate_weeks
from crimejob.grid.categories import (
    CATEGORIES,
    VIOLENT_CATEGORIES,
    VIOLENT_CODES,
    category_of,
    code_categories,
    incident_category,
)
from crimejob.grid.category_counts import load_category_counts
from crimejob.ingest.crime_ingest import ingest_crime_csv
from crimejob.ingest.sources.lapd import read_crime_codes
from tests.test_aggregate import crime_rows, insert_crime

W1, W2 = date(2024, 1, 1), date(2024, 1, 8)
LEGACY_FILES = (
    "lapd_legacy_sample1000_2022.csv.gz",
    "lapd_legacy_sample874_2020_portalformat.csv.gz",
    "lapd_legacy_prefix10000_2020_noWestLA.csv.gz",
)


# --- the mapping ----------------------------------------------------------------------------


def test_every_code_maps_to_exactly_one_of_the_ten_categories():
    table = code_categories()
    assert not table.duplicated(["series", "code"]).any()
    assert set(table["category"]) == set(CATEGORIES)


@pytest.mark.parametrize("series", ["legacy", "nibrs"])
def test_the_violent_categories_hold_exactly_the_violent_codes(series):
    table = code_categories()
    mine = table[table["series"] == series]
    assert set(mine.loc[mine["category"].isin(VIOLENT_CATEGORIES), "code"]) == VIOLENT_CODES[series]


def test_every_real_crm_cd_has_an_explicit_category(shared_data):
    codes = read_crime_codes(shared_data / "lapd_crm_cd_descriptions.csv.gz")
    mapped = set(code_categories().query("series == 'legacy'")["code"])
    assert len(codes) > 100
    assert set(codes["crm_cd"]) - mapped == set()


def test_every_code_seen_in_the_real_legacy_samples_has_an_explicit_category(shared_data):
    mapped = set(code_categories().query("series == 'legacy'")["code"])
    seen: set[str] = set()
    for name in LEGACY_FILES:
        frame = pd.read_csv(shared_data / name, dtype=str)
        columns = [c for c in frame.columns if c.startswith("Crm Cd") and "Desc" not in c]
        values = frame[columns].stack().dropna().str.strip().str.removesuffix(".0")
        seen |= set(values)
    assert len(seen) > 80
    assert seen - mapped == set()


def test_a_legacy_incident_takes_its_crm_cd_and_a_nibrs_case_its_most_serious_offense():
    # Crm Cd first, even where a later code ranks higher in the hierarchy
    assert incident_category("legacy", ["745", "624", "330"]) == "vandalism"
    assert incident_category("legacy", ["510"]) == "motor_vehicle_theft"
    # violent by a secondary code: the most serious violent one, so violent sums hold
    assert incident_category("legacy", ["740", "230", "210"]) == "robbery"
    assert incident_category("legacy", ["624", "230"]) == "aggravated_assault"
    assert incident_category("nibrs", ["290", "13A", "23H"]) == "aggravated_assault"
    assert incident_category("nibrs", ["290", "23H"]) == "theft"
    assert incident_category("nibrs", ["120", "09A"]) == "homicide"
    assert category_of("nibrs", "99Q") == "other"  # unknown code: other, never violent


# --- the grid rows ----------------------------------------------------------------------------


def _random_legacy(n: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    legacy_codes = code_categories().query("series == 'legacy'")["code"].to_numpy()
    rows = []
    for i in range(n):
        codes = list(dict.fromkeys(rng.choice(legacy_codes, size=rng.integers(1, 4))))
        rows.append(
            {
                "source": "2nrs-mtv8",
                "record_id": f"L{i}",
                "incident_id": f"L{i}",
                "occurred": W1 + timedelta(days=int(rng.integers(0, 14))),
                "lat": rng.uniform(34.0, 34.1),
                "lon": rng.uniform(-118.35, -118.2),
                "codes": codes,
                "violent": any(c in VIOLENT_CODES["legacy"] for c in codes),
            }
        )
    return rows


def _nibrs_cases(n: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    nibrs_codes = code_categories().query("series == 'nibrs'")["code"].to_numpy()
    rows = []
    for case in range(n):
        here = {
            "source": "k7nn-b2ep",
            "incident_id": f"C{case}",
            "occurred": W1 + timedelta(days=int(rng.integers(0, 14))),
            "lat": rng.uniform(34.0, 34.1),
            "lon": rng.uniform(-118.35, -118.2),
        }
        for k, code in enumerate(dict.fromkeys(rng.choice(nibrs_codes, rng.integers(1, 4)))):
            rows.append(
                {**here, "record_id": f"C{case}_{code}_{k}", "codes": [code],
                 "violent": code in VIOLENT_CODES["nibrs"]}
            )  # fmt: skip
    return rows


# Incidents made only of these are police-initiated and not counted (docs/accountability.md).
POLICE_INITIATED = {"legacy": {"231", "623", "437", "884", "890"}, "nibrs": set()}


def _expected(rows: list[dict]) -> pd.Series:
    frame = crime_rows(rows)
    frame["code_list"] = [list(c) for c in pd.DataFrame(rows)["codes"]]
    per_incident = frame.groupby(["series", "incident_id"]).agg(
        week_start=("week_start", "min"),
        cell_id=("cell_id", "min"),
        codes=("code_list", "sum"),
    )
    per_incident["category"] = [
        incident_category(series, codes)
        for (series, _), codes in zip(per_incident.index, per_incident["codes"], strict=True)
    ]
    police = [
        set(codes) <= POLICE_INITIATED[series]
        for (series, _), codes in zip(per_incident.index, per_incident["codes"], strict=True)
    ]
    per_incident = per_incident[~np.array(police)]
    return per_incident.groupby(["week_start", "cell_id", "category"]).size()


@pytest.mark.parametrize("few_weeks", [26, 0], ids=["weekly-window", "whole-table"])
def test_category_counts_follow_the_primary_offense_and_violent_ones_sum_to_violent_count(
    clean_db, monkeypatch, few_weeks
):
    monkeypatch.setattr(category_counts, "FEW_WEEKS", few_weeks)
    rows = _random_legacy(600, seed=3) + _nibrs_cases(300, seed=4)
    insert_crime(clean_db, rows)
    report = aggregate_weeks(clean_db, W1, W2)
    got = load_category_counts(clean_db).set_index(["week_start", "cell_id", "category"])
    expected = _expected(rows)
    assert report.category_rows == len(got) == len(expected)
    assert got["incidents"].sort_index().to_dict() == expected.sort_index().to_dict()
    # each incident once: categories sum to incident_count, the violent four to violent_count
    weekly = pd.read_sql("SELECT * FROM grid.weekly", clean_db)
    weekly["week_start"] = pd.to_datetime(weekly["week_start"]).dt.date
    weekly = weekly.set_index(["week_start", "cell_id"])
    flat = got.reset_index()
    total = flat.groupby(["week_start", "cell_id"])["incidents"].sum()
    violent = (
        flat[flat["category"].isin(VIOLENT_CATEGORIES)]
        .groupby(["week_start", "cell_id"])["incidents"]
        .sum()
    )
    assert (weekly["incident_count"] == total.reindex(weekly.index, fill_value=0)).all()
    assert (weekly["violent_count"] == violent.reindex(weekly.index, fill_value=0)).all()
    assert weekly["violent_count"].sum() > 50


def test_a_nibrs_case_with_several_offenses_counts_once_in_its_most_serious_category(clean_db):
    here = {"source": "k7nn-b2ep", "incident_id": "C1", "lat": 34.05, "lon": -118.25,
            "occurred": W2 + timedelta(days=1)}  # fmt: skip
    insert_crime(
        clean_db,
        [
            {**here, "record_id": "C1_290_0", "codes": ["290"], "violent": False},
            {**here, "record_id": "C1_120_1", "codes": ["120"], "violent": True},
            {**here, "record_id": "C1_13A_2", "codes": ["13A"], "violent": True},
        ],
    )
    aggregate_weeks(clean_db, W2, W2)
    cell = int(grid.cell_of([34.05], [-118.25])[0][0])
    rows = load_category_counts(clean_db)
    assert rows.to_dict("records") == [
        {"week_start": W2, "cell_id": cell, "category": "robbery", "incidents": 1}
    ]


def test_re_aggregating_replaces_category_counts_and_late_reports_move_them(clean_db):
    rows = _random_legacy(200, seed=8)
    insert_crime(clean_db, rows)
    aggregate_weeks(clean_db, W1, W2)
    first = load_category_counts(clean_db)
    aggregate_weeks(clean_db, W1, W2)
    assert load_category_counts(clean_db).equals(first)
    late = {"record_id": "LATE", "occurred": W2, "lat": 34.05, "lon": -118.25,
            "codes": ["110"], "violent": True}  # fmt: skip
    insert_crime(clean_db, [late])
    aggregate_weeks(clean_db, W2, W2)
    after = load_category_counts(clean_db)
    homicides = after.query("category == 'homicide'")["incidents"].sum()
    assert homicides == first.query("category == 'homicide'")["incidents"].sum() + 1


def test_the_view_is_documented(clean_db):
    with clean_db.connect() as conn:
        comments = conn.execute(
            sa.text(
                "SELECT a.attname, col_description(a.attrelid, a.attnum) FROM pg_attribute a "
                "WHERE a.attrelid = 'bi.weekly_category_counts'::regclass AND a.attnum > 0"
            )
        ).all()
    assert {name for name, _ in comments} == {"week_start", "cell_id", "category", "incidents"}
    assert all(text for _, text in comments)


def test_real_records_per_violent_category_equal_incidents_counted_by_primary_code(
    clean_db, shared_data
):
    path = shared_data / "lapd_legacy_sample1000_2022.csv.gz"
    ingest_crime_csv(clean_db, path)
    with clean_db.connect() as conn:
        first, last = conn.execute(
            sa.text("SELECT min(week_start), max(week_start) FROM raw.crime_records")
        ).one()
    aggregate_weeks(clean_db, first, last)
    got = load_category_counts(clean_db).groupby("category")["incidents"].sum()
    with clean_db.connect() as conn:
        primary = pd.read_sql_query(
            sa.text("SELECT offense_codes[1] AS code, offense_codes FROM raw.crime_records"), conn
        )
    police = primary["offense_codes"].map(lambda codes: set(codes) <= POLICE_INITIATED["legacy"])
    assert police.sum() > 0  # the sample holds some, e.g. 623 battery on a police officer
    primary = primary[~police]
    by_code = primary["code"].map(lambda c: category_of("legacy", c)).value_counts()
    for category in VIOLENT_CATEGORIES:
        assert got.get(category, 0) == by_code.get(category, 0), category
    assert got[list(VIOLENT_CATEGORIES)].sum() > 80
    assert got.sum() == len(primary)


def test_every_code_the_dev_world_draws_has_an_explicit_category():
    from crimejob.devworld.world import load_params

    params = load_params()
    drawn = {
        "legacy": {*params["codes"]["legacy_violent"], *params["codes"]["legacy_other"]},
        "nibrs": {*params["nibrs"]["nibrs_violent"], *params["nibrs"]["nibrs_other"]},
    }
    table = code_categories()
    for series, codes in drawn.items():
        assert len(codes) > 10
        assert codes - set(table.loc[table["series"] == series, "code"]) == set(), series
