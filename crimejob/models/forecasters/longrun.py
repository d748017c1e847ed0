"""Long-run baselines as the field uses them: the mean of all history, smoothed or not,
and the all-incident leading indicator.

Sparse weekly counts are mostly noise; the best simple forecast of a cell is
its long-run rate, and a cell's neighbours and its incidents of all kinds say
more about that rate than a few violent incidents do. Every choice these
baselines make (bandwidth, window, whether cells that never saw an incident
get any mass) is made on the history they are given only: the newest weeks of
that history are held out, each option is scored on them by mean Poisson
deviance, and the winner is refitted on the whole history. A forecast never
sees its target week, so nothing is tuned on test weeks.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
from scipy.ndimage import gaussian_filter

from crimejob.grid.history import GridHistory
from crimejob.models.forecasters.base import Forecaster
from crimejob.models.metrics import poisson_deviance_per_cell


def smooth(grid: np.ndarray, bandwidth_cells: float) -> np.ndarray:
    """Gaussian kernel smoothing over the grid (``bandwidth_cells`` = kernel sd in cells),
    rescaled so the total stays the same (no mass lost over the grid's edge)."""
    grid = np.asarray(grid, np.float64)
    if bandwidth_cells <= 0:
        return grid
    out = gaussian_filter(grid, bandwidth_cells, mode="constant")
    total = out.sum()
    return out * (grid.sum() / total) if total > 0 else out


def holdout_weeks(history: GridHistory, wanted: int) -> int:
    """How many of the newest weeks the options are scored on: ``wanted``, at most a
    quarter of the history (0 when it is too short to hold any out)."""
    return min(wanted, len(history) // 4)


def _score(prediction: np.ndarray, actual: np.ndarray) -> float:
    """Mean Poisson deviance of one forecast over held-out weeks (actual: (V, rows, cols))."""
    return float(poisson_deviance_per_cell(prediction[None], actual).mean())


class MeanAll(Forecaster):
    """The long-run mean: every week of the history weighs the same."""

    name = "mean_all"

    @classmethod
    def default_hyperparameters(cls) -> dict[str, Any]:
        return {**super().default_hyperparameters(), "rescale_series": True}

    def _predict(self, history: GridHistory) -> np.ndarray:
        return history.crime.mean(axis=0)


class KernelMean(Forecaster):
    """The long-run mean smoothed by a Gaussian kernel over the grid.

    Options scored on the held-out newest weeks: the bandwidth (0 = no
    smoothing, in cells), and whether cells with no incident of any kind in the
    history are kept at zero (outside the police footprint nothing is recorded).
    """

    name = "kde_mean"

    @classmethod
    def default_hyperparameters(cls) -> dict[str, Any]:
        return {
            **super().default_hyperparameters(),
            "rescale_series": True,
            "bandwidths": [0.0, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0],
            "holdout_weeks": 26,
        }

    def choose(self, history: GridHistory) -> dict[str, Any]:
        """The option with the lowest deviance on the held-out weeks (first one if none)."""
        v = holdout_weeks(history, int(self.hp["holdout_weeks"]))
        options = list(itertools.product(self.hp["bandwidths"], (True, False)))
        if v == 0:
            return {"bandwidth": float(self.hp["bandwidths"][0]), "masked": True}
        fit, held = history.crime[:-v], history.crime[-v:]
        seen = history.incidents[:-v].sum(axis=0) > 0
        scores = {
            (b, masked): _score(self._estimate(fit, seen, b, masked), held) for b, masked in options
        }
        b, masked = min(scores, key=scores.get)
        return {"bandwidth": float(b), "masked": masked}

    @staticmethod
    def _estimate(crime: np.ndarray, seen: np.ndarray, bandwidth: float, masked: bool):
        rate = smooth(crime.mean(axis=0), bandwidth)
        if masked:
            kept = np.where(seen, rate, 0.0)
            total = kept.sum()
            rate = kept * (rate.sum() / total) if total > 0 else kept
        return rate

    def _predict(self, history: GridHistory) -> np.ndarray:
        choice = self.choose(history)
        self.last_choice = choice
        seen = history.incidents.sum(axis=0) > 0
        return self._estimate(history.crime, seen, choice["bandwidth"], choice["masked"])


class IncidentShare(Forecaster):
    """The all-incident leading indicator: violent share x each cell's all-incident rate.

    Incidents of all kinds are about seven times as many as violent ones, so a
    cell's all-incident rate is measured far more precisely. The forecast is
    ``share * rate``: ``rate`` the cell's smoothed all-incident mean over a
    window, ``share`` the violent share of its neighbourhood (a wide kernel)
    or of the whole grid. Window, both bandwidths and the share's scale are
    scored on the held-out newest weeks. Where a data set has violent counts
    only (``incidents`` = ``crime``), the share is 1 and this is a smoothed
    windowed mean.
    """

    name = "incident_share"

    @classmethod
    def default_hyperparameters(cls) -> dict[str, Any]:
        return {
            **super().default_hyperparameters(),
            "rescale_series": True,
            "windows": [13, 52, 0],  # 0 = all history
            "rate_bandwidths": [0.0, 0.5, 1.0, 2.0],
            "share_bandwidths": [2.0, 4.0, 8.0, 0.0],  # 0 = one citywide share
            "holdout_weeks": 26,
        }

    @staticmethod
    def _rate(incidents: np.ndarray, window: int, rate_bw: float) -> np.ndarray:
        recent_incidents = incidents[-window:] if window else incidents
        return smooth(recent_incidents.mean(axis=0), rate_bw)

    @staticmethod
    def _share(crime: np.ndarray, incidents: np.ndarray, share_bw: float) -> np.ndarray | float:
        violent_sum, incident_sum = crime.sum(axis=0), incidents.sum(axis=0)
        if share_bw <= 0:
            return violent_sum.sum() / max(incident_sum.sum(), 1.0)
        near_violent = gaussian_filter(violent_sum.astype(np.float64), share_bw, mode="constant")
        near_all = gaussian_filter(incident_sum.astype(np.float64), share_bw, mode="constant")
        overall = violent_sum.sum() / max(incident_sum.sum(), 1.0)
        return np.where(near_all > 1e-9, near_violent / np.maximum(near_all, 1e-9), overall)

    @classmethod
    def _estimate(
        cls, crime: np.ndarray, incidents: np.ndarray, window: int, rate_bw: float, share_bw: float
    ) -> np.ndarray:
        return cls._share(crime, incidents, share_bw) * cls._rate(incidents, window, rate_bw)

    def choose(self, history: GridHistory) -> dict[str, Any]:
        hp = self.hp
        v = holdout_weeks(history, int(hp["holdout_weeks"]))
        if v == 0:
            return {"window": 0, "rate_bandwidth": 0.0, "share_bandwidth": 0.0}
        crime, incidents, held = history.crime[:-v], history.incidents[:-v], history.crime[-v:]
        # each rate and each share once (not once per option: 48 options, 12 rates, 4
        # shares); the estimates are the products _estimate forms
        rates = {
            (int(w), float(b)): self._rate(incidents, int(w), b)
            for w, b in itertools.product(hp["windows"], hp["rate_bandwidths"])
        }
        shares = {float(b): self._share(crime, incidents, b) for b in hp["share_bandwidths"]}
        scores = {}
        for window, rate_bw, share_bw in itertools.product(
            hp["windows"], hp["rate_bandwidths"], hp["share_bandwidths"]
        ):
            estimate = shares[float(share_bw)] * rates[(int(window), float(rate_bw))]
            scores[(int(window), float(rate_bw), float(share_bw))] = _score(estimate, held)
        window, rate_bw, share_bw = min(scores, key=scores.get)
        return {"window": window, "rate_bandwidth": rate_bw, "share_bandwidth": share_bw}

    def _predict(self, history: GridHistory) -> np.ndarray:
        choice = self.choose(history)
        self.last_choice = choice
        return self._estimate(
            history.crime,
            history.incidents,
            choice["window"],
            choice["rate_bandwidth"],
            choice["share_bandwidth"],
        )
