"""Accountability in the product: ranks, flags and intervals per cell, error by division,
disparity, stability and coverage in the scores."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from crimejob.dbcopy import copy_frame
from crimejob.devworld import la_world
from crimejob.grid.cells import N_CELLS
from crimejob.grid.gridstore import store_history
from crimejob.serving.forecast_store import ModelForecast, rank_cells, write_forecasts
from crimejob.serving.scoring import score_target_week

WEEK = date(2024, 1, 1)


def test_tied_cells_share_a_rank_and_zero_forecasts_share_the_last():
    predicted = np.array([0.5, 2.0, 0.5, 3.0, 0.0, 0.0])

    assert rank_cells(predicted).tolist() == [3, 2, 3, 1, 5, 5]


def _sparse_forecast() -> np.ndarray:
    """30 positive cells (two of them tied at the top), zero everywhere else."""
    predicted = np.zeros(N_CELLS)
    predicted[100:130] = np.linspace(2.0, 0.1, 30)
    predicted[4000] = predicted[100]  # a tie at the top, far from cell 100
    return predicted


def test_a_written_forecast_carries_intervals_probabilities_and_honest_flags(clean_db):
    predicted = _sparse_forecast()
    write_forecasts(clean_db, WEEK, WEEK - timedelta(weeks=1), [
        ModelForecast("conv", "3", True, predicted, dispersion=0.4),
    ])  # fmt: skip

    rows = pd.read_sql("SELECT * FROM bi.forecast_latest ORDER BY cell_id", clean_db)

    assert len(rows) == N_CELLS
    zero = predicted == 0
    # no zero forecast is a hotspot, even though 225 slots were free at 5%
    assert not rows.loc[zero, "hotspot_5pct"].any()
    assert rows["hotspot_5pct"].sum() == 31
    assert rows["flag_5pct"].sum() == pytest.approx(31)
    assert (rows.loc[zero, "rank"] == 32).all() and (rows.loc[zero, "prob_any"] == 0).all()
    assert rows.loc[[100, 4000], "rank"].tolist() == [1, 1]
    # 1% = 45 cells: still all 31 positive cells
    assert rows["hotspot_1pct"].sum() == 31
    # the interval widens with the forecast and holds it; P(any) rises with it
    positive = rows[~zero].sort_values("predicted")
    assert (positive["predicted_low"] <= positive["predicted"]).all()
    assert (positive["predicted_high"] >= positive["predicted"].round()).all()
    assert positive["prob_any"].is_monotonic_increasing
    assert positive["predicted_high"].is_monotonic_increasing
    assert (rows["dispersion"] == 0.4).all()
    assert (rows.loc[zero, ["predicted_low", "predicted_high"]] == 0).all().all()


def test_a_boundary_tie_is_flagged_fractionally():
    from crimejob.serving.forecast_store import cell_columns

    predicted = np.zeros(N_CELLS)
    predicted[:44] = 2.0
    predicted[44:48] = 1.0  # 45th slot shared by four tied cells

    columns = cell_columns(predicted, 0.0)

    assert columns["flag_1pct"][44:48].tolist() == [0.25] * 4
    assert columns["flag_1pct"].sum() == pytest.approx(45)
    assert columns["rank"][44:48].tolist() == [45] * 4


@pytest.fixture
def scored_week(clean_db):
    """Three weeks of LA-world actuals, two divisions, forecasts of both weeks, scored."""
    history = la_world(seed=5, start=WEEK - timedelta(weeks=2), weeks=3).history()
    store_history(clean_db, history)
    areas = pd.DataFrame(
        {
            "cell_id": np.arange(0, 2000),
            "area_code": np.where(np.arange(0, 2000) < 1000, 1, 2),
            "area_name": np.where(np.arange(0, 2000) < 1000, "Central", "Rampart"),
            "incidents": 1,
            "share": 1.0,
        }
    )
    with clean_db.begin() as conn:
        copy_frame(conn, areas, "grid.cell_areas", list(areas.columns))
    rng = np.random.default_rng(0)
    target = WEEK
    truth = history.crime[-1].ravel().astype(float)
    previous = truth + rng.gamma(0.3, 0.3, N_CELLS)
    write_forecasts(clean_db, target - timedelta(weeks=1), target - timedelta(weeks=2), [
        ModelForecast("conv", "3", True, previous, 0.2),
        ModelForecast("mean_4w", "baseline", False, np.full(N_CELLS, truth.mean()), 0.0),
    ])  # fmt: skip
    write_forecasts(clean_db, target, target - timedelta(weeks=1), [
        ModelForecast("conv", "3", True, previous, 0.2),
        ModelForecast("mean_4w", "baseline", False, np.full(N_CELLS, truth.mean()), 0.0),
    ])  # fmt: skip
    score_target_week(clean_db, target)
    return clean_db, truth, previous


def test_a_scored_week_has_a_row_per_division_and_model(scored_week):
    engine, truth, predicted = scored_week

    rows = pd.read_sql(
        "SELECT * FROM bi.forecast_scores_by_area ORDER BY model_name, area_code", engine
    )

    assert len(rows) == 4
    assert rows["area_name"].tolist() == ["Central", "Rampart"] * 2
    conv = rows[rows["model_name"] == "conv"].set_index("area_name")
    assert conv.loc["Central", "actual_total"] == truth[:1000].sum()
    assert conv.loc["Rampart", "predicted_total"] == pytest.approx(predicted[1000:2000].sum())
    assert conv.loc["Central", "mae"] == pytest.approx(np.abs(predicted - truth)[:1000].mean())
    assert conv["is_production"].all() and conv["cells"].tolist() == [1000, 1000]
    # each division at its own 5% budget: 50 of its 1,000 cells
    top = np.sort(truth[:1000])[::-1][:50].sum()
    flagged = np.argsort(-predicted[:1000], kind="stable")[:50]
    assert conv.loc["Central", "pei_5pct"] == pytest.approx(truth[:1000][flagged].sum() / top)


def test_scores_carry_stability_coverage_and_disparity(scored_week):
    engine, truth, _ = scored_week

    scores = pd.read_sql("SELECT * FROM bi.forecast_scores ORDER BY model_name", engine)
    by_area = pd.read_sql("SELECT * FROM bi.forecast_scores_by_area", engine)

    conv = scores.set_index("model_name").loc["conv"]
    # the same forecast two weeks running: the flags did not move
    assert conv["jaccard_1pct"] == pytest.approx(1.0)
    assert conv["jaccard_5pct"] == pytest.approx(1.0)
    assert 0.0 < conv["coverage_90"] <= 1.0 and 0.0 < conv["pit_coverage_90"] <= 1.0
    assert conv["dispersion"] == pytest.approx(0.2)
    central = by_area[(by_area.model_name == "conv")].set_index("area_name")
    assert conv["area_deviance_spread"] == pytest.approx(
        abs(central.loc["Central", "poisson_deviance"] - central.loc["Rampart", "poisson_deviance"])
    )
    assert conv["area_worst_deviance"] == central["poisson_deviance"].idxmax()


def test_a_forecast_without_intervals_is_scored_without_coverage(clean_db):
    history = la_world(seed=6, start=WEEK - timedelta(weeks=1), weeks=2).history()
    store_history(clean_db, history)
    write_forecasts(clean_db, WEEK, WEEK - timedelta(weeks=1), [
        ModelForecast("conv", "3", True, np.full(N_CELLS, 0.3), 0.0),
    ])  # fmt: skip
    with clean_db.begin() as conn:  # as written before issue 12
        conn.execute(sa.text("UPDATE ml.forecasts SET predicted_low = NULL, dispersion = NULL"))

    score_target_week(clean_db, WEEK)

    scores = pd.read_sql("SELECT * FROM bi.forecast_scores", clean_db)
    assert scores["coverage_90"].isna().all() and scores["jaccard_5pct"].isna().all()
    assert pd.read_sql("SELECT count(*) AS n FROM bi.forecast_scores_by_area", clean_db).n[0] == 0
