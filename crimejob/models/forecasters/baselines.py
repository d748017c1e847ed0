"""The baselines every forecast is judged against.

The simple ones here learn nothing: each predicts W+1 from the counts of the
last weeks of the history it is given. The field's stronger ones live beside
them: the long-run mean (``mean_all``), its kernel-smoothed form
(``kde_mean``), the all-incident leading indicator (``incident_share``) in
:mod:`crimejob.models.forecasters.longrun`, and LightGBM on lag and neighbourhood
features (``lgbm``) in :mod:`crimejob.models.forecasters.gbm`. ``mean_52w`` and
friends use as many of their weeks as the history has (so they also work
early in a backtest).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from crimejob.grid.history import GridHistory
from crimejob.models.forecasters.base import Forecaster


class LastWeek(Forecaster):
    """Next week looks like last week."""

    name = "last_week"

    def _predict(self, history: GridHistory) -> np.ndarray:
        return history.crime[-1]


class MeanOfWeeks(Forecaster):
    """The mean of the last ``weeks`` weeks (fewer if the history is shorter)."""

    def __init__(self, name: str, default_weeks: int, **hyperparameters: Any) -> None:
        self.name = name
        self._weeks = default_weeks
        super().__init__(**hyperparameters)

    def default_hyperparameters(self) -> dict[str, Any]:  # type: ignore[override]
        return {**super().default_hyperparameters(), "weeks": self._weeks, "rescale_series": True}

    def _predict(self, history: GridHistory) -> np.ndarray:
        return history.crime[-int(self.hp["weeks"]) :].mean(axis=0)


class Ewma(Forecaster):
    """Simple exponential smoothing of each cell's counts.

    ``halflife_weeks`` = 8 sits between the 4- and 13-week means: recent
    weeks weigh most, yet one quiet week does not zero a hotspot. The level
    is computed over the last ``span_weeks`` weeks (weights beyond are < 1e-6).
    """

    name = "ewma"

    @classmethod
    def default_hyperparameters(cls) -> dict[str, Any]:
        return {
            **super().default_hyperparameters(),
            "halflife_weeks": 8.0,
            "span_weeks": 160,
            "rescale_series": True,
        }

    def _predict(self, history: GridHistory) -> np.ndarray:
        recent = history.crime[-int(self.hp["span_weeks"]) :]
        age = np.arange(len(recent))[::-1]  # 0 = the newest week
        weights = 0.5 ** (age / float(self.hp["halflife_weeks"]))
        return np.tensordot(weights / weights.sum(), recent, axes=(0, 0))


def make_baseline(name: str, **overrides: Any) -> Forecaster:
    """A baseline by name (see :data:`BASELINES`)."""
    if name in LONG_RUN:
        from crimejob.models.forecasters import longrun

        return getattr(longrun, LONG_RUN[name])(**overrides)
    if name == "lgbm":
        from crimejob.models.forecasters.gbm import LightGBMForecaster

        return LightGBMForecaster(**overrides)
    if name == "last_week":
        return LastWeek(**overrides)
    if name == "ewma":
        return Ewma(**overrides)
    if name in MEAN_WEEKS:
        return MeanOfWeeks(name, MEAN_WEEKS[name], **overrides)
    raise KeyError(name)


MEAN_WEEKS = {"mean_4w": 4, "mean_13w": 13, "mean_52w": 52}
# The field's baselines (crimejob.models.forecasters.longrun and .gbm).
LONG_RUN = {"mean_all": "MeanAll", "kde_mean": "KernelMean", "incident_share": "IncidentShare"}
BASELINES = (
    "last_week", "mean_4w", "mean_13w", "mean_52w", "ewma",
    "mean_all", "kde_mean", "incident_share", "lgbm",
)  # fmt: skip
