"""How sure a forecast is: each cell's predictive distribution, and how to check it.

A forecaster gives each cell an expected count ``mu``. The count itself is
modelled as negative binomial (NB2: variance ``mu + alpha * mu**2``) around
that mean, Poisson when ``alpha`` is 0. ``alpha`` (the *dispersion*) is one
number per forecast, estimated by maximum likelihood from the forecaster's own
errors on weeks it could see (:func:`dispersion_from_history`): the last
``weeks`` weeks of its history, each forecast from the weeks before it at the
forecaster's horizon. For the baselines these are true out-of-sample errors;
a network has been fitted to those weeks, so its dispersion may come out a
little small (the backtest measures the coverage this gives).

From the distribution, per cell:

- ``prob_any``: P(at least one incident) = 1 - P(0);
- ``predicted_low``, ``predicted_high``: the central 90% interval, the 5% and
  95% quantiles (smallest k with P(Y <= k) >= q). With integer counts an
  interval cannot hold exactly 90%: these bounds hold *at least* 90%.

Two coverages are reported (both over the same cells):

- ``coverage`` (conservative): the share of cells with low <= y <= high. A
  calibrated forecast scores at least 90%, usually more (a quiet cell's [0, 0]
  holds far more than 90%).
- ``pit_coverage`` (randomised PIT, as for count data after Czado, Gneiting &
  Held 2009): each count y is spread uniformly over [F(y-1), F(y)] and the
  share of that mass inside [0.05, 0.95] is counted. A calibrated forecast
  scores 90% in expectation, exactly: this is the one to read as "near 90%".

A zero forecast is a point mass at 0: interval [0, 0], ``prob_any`` 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import optimize, special, stats

if TYPE_CHECKING:
    from crimejob.grid.history import GridHistory
    from crimejob.models.forecasters.base import Forecaster

LEVEL = 0.90
#: Weeks of the history whose forecasts estimate the dispersion.
DISPERSION_WEEKS = 13
#: Largest dispersion considered (variance 20 x mu^2 on top of mu: far beyond real data).
MAX_DISPERSION = 20.0
#: Below this, NB2 and Poisson differ by less than rounding: treat as Poisson.
MIN_DISPERSION = 1e-6


@dataclass(frozen=True)
class Predictive:
    """Negative-binomial (NB2) predictive distributions of many cells with one dispersion."""

    mean: np.ndarray
    dispersion: float = 0.0  # alpha; 0 = Poisson

    def __post_init__(self) -> None:
        mean = np.maximum(np.asarray(self.mean, np.float64), 0.0)
        object.__setattr__(self, "mean", mean)
        if not np.isfinite(self.dispersion) or self.dispersion < 0:
            raise ValueError(f"dispersion must be finite and >= 0, got {self.dispersion}")

    @property
    def is_poisson(self) -> bool:
        return self.dispersion < MIN_DISPERSION

    @property
    def family(self) -> str:
        return "poisson" if self.is_poisson else "negative_binomial"

    def _frozen(self, mean: np.ndarray):
        if self.is_poisson:
            return stats.poisson(mean)
        n = 1.0 / self.dispersion
        return stats.nbinom(n, n / (n + mean))

    def cdf(self, k: np.ndarray) -> np.ndarray:
        """P(Y <= k) per cell (k < 0 gives 0; a zero mean is a point mass at 0)."""
        k = np.broadcast_to(np.asarray(k, np.float64), self.mean.shape)
        positive = self.mean > 0
        out = np.where(k >= 0, 1.0, 0.0)
        if positive.any():
            out = out.copy()
            out[positive] = self._frozen(self.mean[positive]).cdf(k[positive])
        return out

    def variance(self) -> np.ndarray:
        return self.mean + self.dispersion * self.mean**2

    def prob_any(self) -> np.ndarray:
        """P(at least one incident) per cell."""
        mu = self.mean
        if self.is_poisson:
            return -np.expm1(-mu)
        a = self.dispersion
        return -np.expm1(-np.log1p(a * mu) / a)

    def quantile(self, q: float) -> np.ndarray:
        """Smallest integer k with P(Y <= k) >= q, per cell."""
        return _quantiles(self.mean, np.full(self.mean.shape, self.dispersion), q)

    def interval(self, level: float = LEVEL) -> tuple[np.ndarray, np.ndarray]:
        """The central ``level`` interval (integer bounds holding at least ``level``)."""
        tail = (1.0 - level) / 2.0
        return self.quantile(tail), self.quantile(1.0 - tail)


def nb_log_likelihood(actual: np.ndarray, mean: np.ndarray, dispersion: float) -> float:
    """Log-likelihood of counts under NB2(mean, dispersion); Poisson at dispersion 0."""
    y = np.asarray(actual, np.float64)
    mu = np.asarray(mean, np.float64)
    if dispersion < MIN_DISPERSION:
        return float(np.sum(stats.poisson.logpmf(y, mu)))
    r = 1.0 / dispersion
    return float(
        np.sum(
            special.gammaln(y + r)
            - special.gammaln(r)
            - special.gammaln(y + 1.0)
            + r * np.log(r / (r + mu))
            + y * np.log(mu / (r + mu))
        )
    )


def fit_dispersion(actual: np.ndarray, predicted: np.ndarray) -> float:
    """Maximum-likelihood NB2 dispersion of counts ``actual`` around means ``predicted``.

    Cells forecast at exactly zero are left out: their predictive distribution
    is a point mass whatever the dispersion, so they say nothing about it.
    Returns 0 (Poisson) when the counts are not overdispersed.
    """
    y = np.asarray(actual, np.float64).ravel()
    mu = np.asarray(predicted, np.float64).ravel()
    keep = mu > 0
    y, mu = y[keep], mu[keep]
    if y.size == 0 or y.sum() == 0:
        return 0.0
    # Cameron & Trivedi's moment check first: no excess variance, no NB.
    if np.sum((y - mu) ** 2 - y) <= 0:
        return 0.0

    def negative(log_alpha: float) -> float:
        return -nb_log_likelihood(y, mu, float(np.exp(log_alpha)))

    best = optimize.minimize_scalar(
        negative, bounds=(np.log(1e-4), np.log(MAX_DISPERSION)), method="bounded"
    )
    alpha = float(np.exp(best.x))
    if -best.fun <= nb_log_likelihood(y, mu, 0.0):
        return 0.0
    return alpha


def dispersion_from_history(
    forecaster: Forecaster, history: GridHistory, weeks: int = DISPERSION_WEEKS
) -> float:
    """The dispersion of ``forecaster``'s errors on the last ``weeks`` weeks of ``history``.

    Each of those weeks is forecast from the weeks at least ``horizon`` before it
    (as :func:`crimejob.models.backtest.run_backtest` would), so nothing after the
    history is used. Weeks without enough history before them are skipped; with
    none left the answer is 0 (Poisson).
    """
    actual, predicted = [], []
    for index in range(max(0, len(history) - weeks), len(history)):
        target = history.week(index)
        past = history.through(target - timedelta(weeks=forecaster.horizon))
        if len(past) < max(1, forecaster.min_history):
            continue
        predicted.append(forecaster.predict(past))
        actual.append(history.crime[index])
    if not actual:
        return 0.0
    return fit_dispersion(np.stack(actual), np.stack(predicted))


def sum_of_cells(means: np.ndarray, dispersion: float) -> Predictive:
    """The predictive distribution of a sum of cells (a division, the city), one value.

    Moment-matched NB2: the mean is the sum of the means and the variance the sum of
    the cells' variances, i.e. the cells are taken as independent given their means.
    Neighbouring cells share shocks (weather, events), so this interval is, if
    anything, too narrow for large areas; check its coverage before relying on it.
    """
    mu = np.maximum(np.asarray(means, np.float64), 0.0)
    total = float(mu.sum())
    if total <= 0:
        return Predictive(np.array([0.0]), 0.0)
    return Predictive(np.array([total]), float(dispersion * np.sum(mu**2) / total**2))


def _quantiles(mean: np.ndarray, dispersion: np.ndarray, q: float) -> np.ndarray:
    """Smallest integer k with P(Y <= k) >= q for each (mean, dispersion) pair: Poisson
    below :data:`MIN_DISPERSION`, NB2 above; a zero mean is a point mass at 0."""
    out = np.zeros(mean.shape)
    poisson, positive = dispersion < MIN_DISPERSION, mean > 0
    some = positive & poisson
    if some.any():
        out[some] = stats.poisson(mean[some]).ppf(q)
    some = positive & ~poisson
    if some.any():
        n = 1.0 / dispersion[some]
        out[some] = stats.nbinom(n, n / (n + mean[some])).ppf(q)
    return out


def intervals_of_each(
    means: np.ndarray, dispersions: np.ndarray, level: float = LEVEL
) -> tuple[np.ndarray, np.ndarray]:
    """``Predictive(means[i], dispersions[i]).interval(level)`` for every i at once.

    Why: the division sums (:func:`sum_of_cells`) each have their own dispersion, and a
    scipy distribution frozen per value cost a forecast step more than the quantiles;
    the quantile functions are elementwise, so the bounds are the same numbers."""
    mean = np.maximum(np.asarray(means, np.float64), 0.0)
    alpha = np.asarray(dispersions, np.float64)
    tail = (1.0 - level) / 2.0
    return _quantiles(mean, alpha, tail), _quantiles(mean, alpha, 1.0 - tail)


def interval_coverage(actual: np.ndarray, low: np.ndarray, high: np.ndarray) -> float:
    """Conservative coverage: the share of cells with low <= actual <= high."""
    y = np.asarray(actual, np.float64).ravel()
    lo, hi = np.asarray(low).ravel(), np.asarray(high).ravel()
    return float(np.mean((lo <= y) & (y <= hi))) if y.size else float("nan")


def pit_coverage(actual: np.ndarray, predictive: Predictive, level: float = LEVEL) -> float:
    """Randomised-PIT coverage: expected share of cells whose PIT falls in the central
    ``level`` band, spreading each count over [F(y-1), F(y)]. Exactly ``level`` in
    expectation for a calibrated forecast, integer counts or not."""
    y = np.asarray(actual, np.float64).ravel()
    if y.size == 0:
        return float("nan")
    mean = predictive.mean.ravel()
    flat = Predictive(mean, predictive.dispersion)
    below, upto = flat.cdf(y - 1.0), flat.cdf(y)
    tail = (1.0 - level) / 2.0
    inside = np.clip(np.minimum(upto, 1.0 - tail) - np.maximum(below, tail), 0.0, None)
    width = upto - below
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(width > 0, inside / width, ((upto >= tail) & (upto <= 1 - tail)) * 1.0)
    return float(np.mean(share))


def reliability_table(
    predicted: np.ndarray,
    actual: np.ndarray,
    prob_any: np.ndarray | None = None,
    bins: int = 10,
) -> list[dict[str, Any]]:
    """Predicted against observed by decile of the prediction (equal-count bins).

    Rows: decile, cells, the range of predictions in it, mean predicted and mean
    observed count, and (given ``prob_any``) the mean P(any) against the observed
    share of cells with at least one incident. A calibrated forecast has
    observed close to predicted in every row.
    """
    mu = np.asarray(predicted, np.float64).ravel()
    y = np.asarray(actual, np.float64).ravel()
    p = None if prob_any is None else np.asarray(prob_any, np.float64).ravel()
    order = np.argsort(mu, kind="stable")
    rows = []
    for decile, idx in enumerate(np.array_split(order, bins), start=1):
        if idx.size == 0:
            continue
        row: dict[str, Any] = {
            "decile": decile,
            "cells": int(idx.size),
            "predicted_min": float(mu[idx].min()),
            "predicted_max": float(mu[idx].max()),
            "mean_predicted": float(mu[idx].mean()),
            "mean_observed": float(y[idx].mean()),
        }
        if p is not None:
            row["mean_prob_any"] = float(p[idx].mean())
            row["observed_any"] = float(np.mean(y[idx] > 0))
        rows.append(row)
    return rows


def format_reliability(rows: list[dict[str, Any]]) -> str:
    """A reliability table as fixed-width text."""
    lines = [
        f"{'decile':>6} {'cells':>8} {'pred range':>17} {'mean pred':>10} {'observed':>9}"
        f" {'P(any)':>7} {'obs any':>7}"
    ]
    for r in rows:
        span = f"{r['predicted_min']:.3f}-{r['predicted_max']:.3f}"
        lines.append(
            f"{r['decile']:>6} {r['cells']:>8} {span:>17} {r['mean_predicted']:>10.4f} "
            f"{r['mean_observed']:>9.4f} {r.get('mean_prob_any', float('nan')):>7.4f} "
            f"{r.get('observed_any', float('nan')):>7.4f}"
        )
    return "\n".join(lines)
