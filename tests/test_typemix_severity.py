"""Crime-type mix forecasts, harm weights and the severity metrics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crimejob.grid.categories import CATEGORIES, VIOLENT_CATEGORIES
from crimejob.grid.cells import N_CELLS
from crimejob.models.metrics import r_squared, score_severity
from crimejob.serving.severity import HARM_WEIGHTS, severity, weights
from crimejob.serving.typemix import (
    CategoryHistory,
    LongRunMix,
    ShrunkMix,
    category_history,
    log_loss,
    score_mix,
)

C = len(CATEGORIES)


# --- severity ---------------------------------------------------------------------------


def test_every_category_has_a_cited_harm_weight_and_violence_weighs_most():
    assert set(HARM_WEIGHTS) == set(CATEGORIES)
    for weight in HARM_WEIGHTS.values():
        assert weight.days > 0 and weight.source.startswith("Cal. ") and weight.offence
    w = dict(zip(CATEGORIES, weights(), strict=True))
    assert w["homicide"] > w["rape"] > w["robbery"]
    assert min(w[c] for c in VIOLENT_CATEGORIES) > max(
        w[c] for c in ("theft", "simple_assault", "other")
    )


def test_severity_is_the_harm_weighted_sum_of_category_counts():
    counts = np.zeros((C, 3))
    counts[CATEGORIES.index("homicide"), 0] = 1
    counts[CATEGORIES.index("theft"), 1] = 4
    got = severity(counts)
    assert got.tolist() == [HARM_WEIGHTS["homicide"].days, 4 * HARM_WEIGHTS["theft"].days, 0]


def test_r_squared_is_one_when_perfect_zero_for_the_mean_and_negative_when_worse():
    actual = np.array([0.0, 1.0, 2.0, 5.0])
    assert r_squared(actual, actual) == 1.0
    assert r_squared(np.full(4, actual.mean()), actual) == pytest.approx(0.0)
    assert r_squared(actual[::-1], actual) < 0
    assert np.isnan(r_squared(actual, np.ones(4)))
    assert score_severity(actual + 1, actual) == {"mae": 1.0, "r2": pytest.approx(1 - 4 / 14)}


# --- the mix ---------------------------------------------------------------------------------


def mixed_world(
    weeks: int = 60, cells: int = 300, seed: int = 0
) -> tuple[CategoryHistory, np.ndarray]:
    """Two divisions with different true mixes; each cell follows its division's mix."""
    rng = np.random.default_rng(seed)
    labels = np.where(np.arange(cells) < cells // 2, 1, 2)
    mix = {1: rng.dirichlet(np.ones(C) * 2), 2: rng.dirichlet(np.ones(C) * 2)}
    level = rng.gamma(0.6, 1.5, cells)
    counts = np.zeros((weeks, C, cells), np.float32)
    for i in range(cells):
        counts[:, :, i] = rng.poisson(level[i] * mix[labels[i]], (weeks, C))
    starts = np.datetime64("2020-01-06") + 7 * np.arange(weeks)
    return CategoryHistory(starts, counts), labels


def test_mixes_are_probabilities_and_expected_counts_split_the_cells_level():
    history, labels = mixed_world()
    for model in (LongRunMix(), ShrunkMix(labels)):
        model.fit(history)
        mix = model.mix(history)
        assert mix.shape == (C, 300) and (mix > 0).all()
        assert np.allclose(mix.sum(axis=0), 1)
        level = history.counts[-52:].sum(axis=1).mean(axis=0)
        assert np.allclose(model.predict(history).sum(axis=0), level, rtol=1e-5)


def test_shrinking_to_the_division_beats_each_cells_own_mix_on_sparse_cells():
    history, labels = mixed_world(weeks=70, seed=2)
    past, target = history.through(59), history.counts[60:].sum(axis=0).astype(np.float64)
    ours = ShrunkMix(labels).fit(past)
    baseline = LongRunMix().fit(past)
    assert log_loss(ours.mix(past), target) < log_loss(baseline.mix(past), target) - 0.05
    assert ours.kappa > 1  # chosen on the history's own newest weeks


def test_a_cell_with_no_history_takes_its_divisions_mix_and_the_baseline_is_uniform():
    history, labels = mixed_world()
    history.counts[:, :, 0] = 0
    ours = ShrunkMix(labels).fit(history)
    pooled = history.counts[:, :, labels == 1].sum(axis=(0, 2)) + 0.5
    assert np.allclose(ours.mix(history)[:, 0], pooled / pooled.sum())
    assert np.allclose(LongRunMix().mix(history)[:, 0], 1 / C)


def test_score_mix_reports_log_loss_deviance_per_category_and_severity():
    history, labels = mixed_world()
    past = history.through(50)
    actual = history.counts[51].astype(np.float64)
    scores = score_mix(LongRunMix(), past, actual, np.ones(300, bool))
    assert set(scores) == {"log_loss", "severity_mae", "severity_r2"} | {
        f"deviance_{c}" for c in CATEGORIES
    }
    assert scores["log_loss"] > 0 and scores["severity_mae"] > 0


def test_category_history_counts_records_by_week_cell_and_category():
    starts = np.datetime64("2024-01-01") + 7 * np.arange(2)
    records = pd.DataFrame(
        {
            "series": ["legacy", "legacy", "nibrs", "nibrs"],
            "crm_cd": ["210", "510", None, None],
            "nibr_code": [None, None, "13A", "290"],
            "occurred_at": pd.to_datetime(
                ["2024-01-02 10:00", "2024-01-09 00:00", "2024-01-03 08:00", "2023-12-01 00:00"]
            ),
            "cell_id": [5, 5, 7, 7],
        }
    )
    history = category_history(records, starts, n_cells=10)
    assert history.counts.sum() == 3  # the December record is before the first week
    assert history.counts[0, CATEGORIES.index("robbery"), 5] == 1
    assert history.counts[1, CATEGORIES.index("motor_vehicle_theft"), 5] == 1
    assert history.counts[0, CATEGORIES.index("aggravated_assault"), 7] == 1


# --- the weekly forecast in the database ---------------------------------------------------


def test_the_weekly_run_writes_category_probabilities_and_severity_per_cell(clean_db):
    from datetime import date, timedelta

    from crimejob.dbcopy import copy_frame
    from crimejob.serving.category_forecasts import load_category_history, write_category_forecasts

    history, labels = mixed_world(weeks=20, cells=300, seed=5)
    weeks = [date(2024, 1, 1) + timedelta(weeks=k) for k in range(20)]
    t, c, i = np.nonzero(history.counts)
    rows = pd.DataFrame({"week_start": np.array(weeks)[t], "cell_id": i,
                         "category": np.array(CATEGORIES)[c],
                         "incidents": history.counts[t, c, i].astype(int)})  # fmt: skip
    with clean_db.begin() as conn:
        copy_frame(conn, rows, "grid.weekly_categories", list(rows.columns))
    starts = np.array(weeks, "datetime64[D]")
    # the counts read back (through COPY) are the stored ones, week by week
    stored = np.zeros((20, C, N_CELLS), np.float32)
    stored[..., : history.counts.shape[2]] = history.counts
    assert np.array_equal(load_category_history(clean_db, starts).counts, stored)
    inner = load_category_history(clean_db, starts[3:9])
    assert np.array_equal(inner.counts, stored[3:9])
    assert np.array_equal(inner.week_starts, starts[3:9])
    target = weeks[-1] + timedelta(weeks=3)
    written = write_category_forecasts(clean_db, starts, target)
    got = pd.read_sql("SELECT * FROM bi.category_forecasts", clean_db)
    cells_seen = int((history.counts.sum(axis=(0, 1)) > 0).sum())
    assert written == len(got) == cells_seen * C
    probability = got.groupby("cell_id")["probability"].sum()
    assert np.allclose(probability, 1.0)
    expected = got.groupby("cell_id")["expected"].sum()
    level = history.counts[-52:].sum(axis=1).mean(axis=0)
    assert np.allclose(expected.to_numpy(), level[expected.index.to_numpy()], rtol=1e-5)
    severity_rows = pd.read_sql("SELECT * FROM bi.severity_forecasts", clean_db).set_index(
        "cell_id"
    )
    one = got[got["cell_id"] == got["cell_id"].iloc[0]]
    assert severity_rows.loc[one["cell_id"].iloc[0], "expected_harm_days"] == pytest.approx(
        (one["expected"] * one["harm_weight_days"]).sum()
    )
    assert (got["horizon_weeks"] == 3).all()
    assert write_category_forecasts(clean_db, starts, target) == written  # replaced, not added
    assert len(pd.read_sql("SELECT 1 FROM ml.category_forecasts", clean_db)) == written
