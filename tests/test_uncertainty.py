"""Predictive distributions: the dispersion is recovered, intervals cover what they claim."""

from __future__ import annotations

import math
from datetime import date

import numpy as np
import pytest

from crimejob.grid.history import GridHistory
from crimejob.models.forecasters import get_forecaster
from crimejob.models.uncertainty import (
    Predictive,
    dispersion_from_history,
    fit_dispersion,
    interval_coverage,
    intervals_of_each,
    pit_coverage,
    reliability_table,
    sum_of_cells,
)


def _nb_counts(rng, mean, alpha):
    """NB2 counts as a gamma-Poisson mixture (variance mean + alpha mean^2)."""
    if alpha == 0:
        return rng.poisson(mean)
    return rng.poisson(rng.gamma(1 / alpha, alpha * mean))


def test_poisson_probabilities_and_interval_by_hand():
    dist = Predictive(np.array([0.0, 0.1, 2.0]))

    assert dist.family == "poisson"
    np.testing.assert_allclose(dist.prob_any(), [0.0, 1 - math.exp(-0.1), 1 - math.exp(-2.0)])
    low, high = dist.interval(0.90)
    # Poisson(0.1): P(Y <= 0) = 0.905 < 0.95, so high = 1.
    # Poisson(2): P(Y <= 0) = 0.135 >= 0.05, so low = 0; P(Y <= 4) = 0.947, P(Y <= 5) = 0.983.
    assert low.tolist() == [0, 0, 0] and high.tolist() == [0, 1, 5]


def test_negative_binomial_is_wider_than_poisson_with_the_same_mean():
    poisson = Predictive(np.array([3.0]), 0.0)
    nb = Predictive(np.array([3.0]), 0.8)

    assert nb.family == "negative_binomial"
    assert nb.variance()[0] == pytest.approx(3.0 + 0.8 * 9.0)
    assert nb.interval()[1][0] > poisson.interval()[1][0]
    # NB2: P(0) = (1 + alpha mu)^(-1/alpha)
    assert nb.prob_any()[0] == pytest.approx(1 - (1 + 0.8 * 3.0) ** (-1 / 0.8))


@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.5])
def test_the_dispersion_of_simulated_counts_is_recovered(alpha):
    rng = np.random.default_rng(1)
    mean = rng.gamma(0.5, 0.6, 40_000)
    counts = _nb_counts(rng, mean, alpha)

    fitted = fit_dispersion(counts, mean)

    assert fitted == pytest.approx(alpha, abs=0.08)


def test_a_calibrated_forecast_covers_90_percent_by_pit_and_at_least_90_conservatively():
    rng = np.random.default_rng(2)
    mean = rng.gamma(0.4, 1.0, 50_000)
    counts = _nb_counts(rng, mean, 0.5)
    dist = Predictive(mean, 0.5)
    low, high = dist.interval()

    assert pit_coverage(counts, dist) == pytest.approx(0.90, abs=0.005)
    assert interval_coverage(counts, low, high) >= 0.90
    # A forecast that ignores the overdispersion claims too narrow intervals.
    assert pit_coverage(counts, Predictive(mean, 0.0)) < 0.89


def test_a_zero_forecast_is_a_point_mass_and_an_incident_there_is_never_covered():
    dist = Predictive(np.array([0.0, 0.0]), 0.5)

    assert dist.interval() == (pytest.approx([0, 0]), pytest.approx([0, 0]))
    assert dist.prob_any().tolist() == [0.0, 0.0]
    assert pit_coverage(np.array([1.0, 1.0]), dist) == 0.0
    # y = 0 under a point mass at 0: the PIT is spread over [0, 1], 90% of it inside
    assert pit_coverage(np.array([0.0]), Predictive(np.array([0.0]))) == pytest.approx(0.9)


def test_a_sum_of_independent_cells_matches_the_simulated_total():
    rng = np.random.default_rng(3)
    mean = rng.gamma(0.5, 0.4, 300)
    totals = np.array([_nb_counts(rng, mean, 0.6).sum() for _ in range(4000)])

    total = sum_of_cells(mean, 0.6)

    assert total.mean[0] == pytest.approx(mean.sum())
    assert total.variance()[0] == pytest.approx(totals.var(), rel=0.1)
    low, high = total.interval()
    assert interval_coverage(totals, np.full(4000, low[0]), np.full(4000, high[0])) >= 0.88


def test_reliability_table_bins_by_prediction_and_compares_means():
    predicted = np.repeat([0.1, 1.0], 50)
    actual = np.concatenate([np.zeros(45), np.ones(5), np.ones(50)])

    rows = reliability_table(predicted, actual, prob_any=Predictive(predicted).prob_any(), bins=2)

    assert [r["cells"] for r in rows] == [50, 50]
    assert rows[0]["mean_predicted"] == pytest.approx(0.1)
    assert rows[0]["mean_observed"] == pytest.approx(0.1)
    assert rows[1]["observed_any"] == 1.0


def test_dispersion_from_history_uses_only_the_weeks_the_forecaster_could_see():
    rng = np.random.default_rng(4)
    rate = rng.gamma(0.5, 1.0, (20, 20))
    weeks = 60
    crime = np.stack([_nb_counts(rng, rate, 0.7) for _ in range(weeks)]).astype(np.float32)
    starts = np.datetime64(date(2023, 1, 2), "D") + 7 * np.arange(weeks)
    history = GridHistory(starts, crime, np.zeros((weeks, 20, 20, 3), np.float32))

    alpha = dispersion_from_history(get_forecaster("mean_52w"), history, weeks=13)

    # the trailing mean's own estimation error adds a little on top of the planted 0.7
    assert 0.6 < alpha < 1.0
    # a history too short to forecast any week from gives Poisson, not an error
    assert dispersion_from_history(get_forecaster("mean_4w"), history.select(slice(0, 1))) == 0


def test_the_backtest_reports_coverage_near_90_and_a_reliability_table():
    import json

    from crimejob.models.backtest import run_backtest

    rng = np.random.default_rng(5)
    rate = rng.gamma(0.5, 0.8, (30, 30))
    weeks = 90
    crime = np.stack([_nb_counts(rng, rate, 0.4) for _ in range(weeks)]).astype(np.float32)
    starts = np.datetime64(date(2022, 1, 3), "D") + 7 * np.arange(weeks)
    history = GridHistory(starts, crime, np.zeros((weeks, 30, 30, 3), np.float32))

    result = run_backtest(history, history.week(60), history.last_week, ["mean_52w", "last_week"])

    data = json.loads(json.dumps(result.to_json()))
    steady = data["extra_means"]["mean_52w"]
    # a stationary world: a long mean with its fitted dispersion is close to calibrated
    assert 0.86 < steady["pit_coverage_90"] < 0.94
    assert steady["coverage_90_active"] >= 0.9
    assert 0.3 < steady["dispersion"] < 0.7
    # last week's counts as the mean: a noisy forecast, honestly much wider
    assert data["extra_means"]["last_week"]["dispersion"] > steady["dispersion"]
    rows = data["reliability"]["mean_52w"]
    assert [r["decile"] for r in rows] == list(range(1, 11))
    assert rows[-1]["mean_predicted"] > rows[0]["mean_predicted"]
    assert abs(rows[-1]["mean_observed"] / rows[-1]["mean_predicted"] - 1) < 0.15
    assert "PIT90act" in result.format_table()


def test_the_intervals_of_many_sums_at_once_are_each_ones_own():
    # every dispersion regime (Poisson, the threshold, NB) and zero, tiny and large means
    rng = np.random.default_rng(7)
    means = np.concatenate([[0.0, 1e-9, 0.3, 2.5, 40.0, 900.0], rng.gamma(0.5, 20.0, 200)])
    alphas = np.resize([0.0, 5e-7, 1e-6, 1e-3, 0.2, 3.0, 20.0], len(means))
    low, high = intervals_of_each(means, alphas)
    for mean, alpha, lo, hi in zip(means, alphas, low, high, strict=True):
        one_low, one_high = Predictive(np.array([mean]), float(alpha)).interval()
        assert (lo, hi) == (one_low[0], one_high[0])
