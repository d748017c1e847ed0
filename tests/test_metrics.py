"""The metrics module, against small cases worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from crimejob.models.metrics import (
    METRIC_KEYS,
    active_cells,
    flag_jaccard,
    flag_weights,
    flagged_cells,
    mean_scores,
    score_forecast,
)


def test_errors_and_deviance_on_four_cells_match_the_hand_computation():
    predicted = np.array([1.0, 0.0, 2.0, 0.5])
    actual = np.array([0.0, 0.0, 3.0, 1.0])
    active = np.array([False, False, True, True])

    scores = score_forecast(predicted, actual, active)

    assert scores["mae"] == pytest.approx(2.5 / 4)
    assert scores["rmse"] == pytest.approx(0.75)
    # 2*(y ln(y/mu) - (y - mu)) per cell; y ln(y/mu) = 0 where y = 0.
    per_cell = [2.0, 0.0, 2 * (3 * math.log(1.5) - 1), 2 * (math.log(2) - 0.5)]
    assert scores["poisson_deviance"] == pytest.approx(sum(per_cell) / 4)
    assert scores["mae_active"] == pytest.approx(0.75)
    assert scores["rmse_active"] == pytest.approx(math.sqrt(1.25 / 2))
    assert scores["poisson_deviance_active"] == pytest.approx(sum(per_cell[2:]) / 2)
    assert scores["actual_total"] == 4.0
    assert list(scores) == list(METRIC_KEYS)


def test_hotspot_metrics_on_100_cells_flag_1_and_5_cells():
    actual = np.zeros(100)
    actual[[3, 7, 10, 11, 12]] = [4, 2, 1, 1, 1]  # 9 incidents
    predicted = np.zeros(100)
    predicted[[7, 3, 50, 10]] = [3.0, 2.0, 2.0, 1.0]

    scores = score_forecast(predicted, actual)

    # 1% of 100 cells = 1 cell: cell 7, which caught 2 of 9; the best cell holds 4.
    assert scores["hit_rate_1pct"] == pytest.approx(2 / 9)
    assert scores["pai_1pct"] == pytest.approx((2 / 9) / 0.01)
    assert scores["pei_1pct"] == pytest.approx(2 / 4)
    # 5% = 5 cells, but only 4 cells have a positive forecast: a zero forecast is never
    # flagged, so the fifth slot stays unused (and the area share stays the budget's).
    assert flagged_cells(predicted, 5).tolist() == [7, 3, 50, 10]
    assert scores["hit_rate_5pct"] == pytest.approx(7 / 9)
    assert scores["pai_5pct"] == pytest.approx((7 / 9) / 0.05)
    assert scores["pei_5pct"] == pytest.approx(7 / 9)


def test_cells_tied_at_the_boundary_share_the_slots_left_as_random_tie_breaking_would():
    predicted = np.array([3.0, 2.0, 2.0, 2.0, 1.0])
    actual = np.array([1.0, 3.0, 0.0, 0.0, 5.0])

    weights = flag_weights(predicted, 2)  # one slot left for three cells tied at 2.0

    assert weights.tolist() == pytest.approx([1.0, 1 / 3, 1 / 3, 1 / 3, 0.0])
    assert weights @ actual == pytest.approx(1.0 + 3.0 / 3)
    # the same answer whatever the cell_id order of the tied cells
    assert flag_weights(predicted[[0, 3, 2, 1, 4]], 2) @ actual[[0, 3, 2, 1, 4]] == (
        pytest.approx(2.0)
    )


def test_a_forecast_of_zero_everywhere_flags_nothing_and_catches_nothing():
    actual = np.zeros(100)
    actual[5] = 2

    scores = score_forecast(np.zeros(100), actual)

    assert flag_weights(np.zeros(100), 5).sum() == 0
    assert scores["hit_rate_5pct"] == 0 and scores["pei_1pct"] == 0


def test_calibration_is_the_predicted_total_against_the_actual_total():
    scores = score_forecast(np.full(10, 0.3), np.eye(1, 10, 0).ravel() * 2)

    assert scores["predicted_total"] == pytest.approx(3.0)
    assert scores["mass_ratio"] == pytest.approx(1.5)
    assert math.isnan(score_forecast(np.full(10, 0.3), np.zeros(10))["mass_ratio"])


def test_flag_jaccard_measures_how_much_two_weeks_flag_the_same_cells():
    first = np.array([5.0, 4.0, 0.0, 0.0] + [0.0] * 96)
    second = np.array([5.0, 0.0, 4.0, 0.0] + [0.0] * 96)

    assert flag_jaccard(first, first, 0.02) == pytest.approx(1.0)
    assert flag_jaccard(first, second, 0.02) == pytest.approx(1 / 3)  # {0,1} vs {0,2}
    assert math.isnan(flag_jaccard(np.zeros(100), np.zeros(100), 0.02))


def test_the_real_grid_flags_45_and_225_cells():
    actual = np.zeros((60, 75))
    actual.flat[:300] = 1.0
    predicted = np.linspace(1.0, 0.0, 4500).reshape(60, 75)  # highest first in cell order

    scores = score_forecast(predicted, actual)

    assert scores["hit_rate_1pct"] == pytest.approx(45 / 300)
    assert scores["hit_rate_5pct"] == pytest.approx(225 / 300)
    assert scores["pai_5pct"] == pytest.approx((225 / 300) / (225 / 4500))
    assert scores["pei_5pct"] == pytest.approx(1.0)


def test_a_perfect_forecast_has_no_error_and_full_efficiency():
    rng = np.random.default_rng(3)
    actual = rng.poisson(0.5, (60, 75)).astype(float)

    scores = score_forecast(actual, actual)

    assert scores["mae"] == 0 and scores["rmse"] == 0
    assert scores["poisson_deviance"] == pytest.approx(0.0, abs=1e-9)
    assert scores["pei_1pct"] == pytest.approx(1.0) and scores["pei_5pct"] == pytest.approx(1.0)


def test_a_week_without_incidents_has_undefined_hotspot_metrics_that_means_skip():
    quiet = score_forecast(np.full(100, 0.5), np.zeros(100))
    busy = score_forecast(np.full(100, 0.5), np.eye(1, 100, 0).ravel())

    assert math.isnan(quiet["hit_rate_5pct"]) and math.isnan(quiet["pai_1pct"])
    means = mean_scores([quiet, busy])
    assert means["hit_rate_5pct"] == busy["hit_rate_5pct"]
    assert means["mae"] == pytest.approx((quiet["mae"] + busy["mae"]) / 2)


def test_a_zero_forecast_where_incidents_happen_costs_a_large_finite_deviance():
    scores = score_forecast(np.array([0.0]), np.array([1.0]))

    # mu floored at 1e-3 inside the log: 2 * (1 * ln(1000) - 1)
    assert scores["poisson_deviance"] == pytest.approx(2 * (math.log(1000) - 1))


def test_bad_input_is_refused_with_a_clear_error():
    with pytest.raises(ValueError, match="cells"):
        score_forecast(np.zeros(10), np.zeros(11))
    with pytest.raises(ValueError, match="NaN"):
        score_forecast(np.array([np.nan, 1.0]), np.zeros(2))


def test_active_cells_are_those_with_any_incident_in_the_history():
    crime = np.zeros((3, 2, 2))
    crime[1, 0, 1] = 2

    assert active_cells(crime).tolist() == [[False, True], [False, False]]
