"""The one contract every forecaster keeps (see the package docstring)."""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from crimejob.errors import ConfigError, DataError
from crimejob.grid.history import GridHistory
from crimejob.grid.series_break import rescale_to_current_series


@dataclass
class FitReport:
    """What one fit or fine-tune did: which target weeks it trained and validated on."""

    mode: str  # "retrain", "finetune" or "none" (baselines)
    train_targets: list[date] = field(default_factory=list)
    validation_targets: list[date] = field(default_factory=list)
    epochs_run: int = 0
    best_val_loss: float | None = None
    seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)  # model-specific decisions (JSON)

    @property
    def trained_through(self) -> date | None:
        """The newest target week whose counts the weights were fitted to."""
        return max(self.train_targets) if self.train_targets else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "train_weeks": len(self.train_targets),
            "first_train_target": _iso(min(self.train_targets, default=None)),
            "last_train_target": _iso(self.trained_through),
            "validation_targets": [d.isoformat() for d in self.validation_targets],
            "epochs_run": self.epochs_run,
            "best_val_loss": self.best_val_loss,
            "seconds": round(self.seconds, 3),
            **({"details": self.details} if self.details else {}),
        }


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day else None


# Hyperparameters that count something that must exist at least once.
_AT_LEAST_ONE = frozenset({"horizon", "window", "batch_size", "gpu_batch_size"})


def _hyperparameter_problem(key: str, value: Any, default: Any) -> str | None:
    """Why ``value`` cannot stand in for a numeric ``default`` (None when it can): a
    number of the same kind, finite and not negative; counts at least 1."""
    if default is None and value is None:
        return None
    if isinstance(default, bool) or not isinstance(default, int | float | None):
        return None  # flags, names and lists are the forecaster's own business
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "must be a number"
    if not math.isfinite(value) or value < 0:
        return "must be a finite number, not negative"
    if isinstance(default, int) or default is None:
        if value != int(value):
            return "must be a whole number"
        if key in _AT_LEAST_ONE and value < 1:
            return "must be at least 1"
    return None


class Forecaster(abc.ABC):
    """Fit on the grids of weeks up to W; predict the expected count of each cell in W+h.

    ``h`` is the ``horizon`` hyperparameter (default 1): how many weeks after the
    last week of the history the forecast week is. It is more than one when the
    newest weeks are not fully published yet (LAPD publishes about two weeks late).
    """

    name: str = ""
    #: Whether fit() learns weights (and so needs a registry version to forecast).
    trainable: bool = False
    #: Weeks of history predict() needs at least.
    min_history: int = 1

    def __init__(self, **hyperparameters: Any) -> None:
        defaults = self.default_hyperparameters()
        unknown = set(hyperparameters) - set(defaults)
        if unknown:
            raise ConfigError(
                f"{self.name}: unknown hyperparameter(s) {sorted(unknown)} "
                "(from CRIMEJOB_HYPERPARAMETERS or the caller; known: "
                f"{', '.join(sorted(defaults))})"
            )
        for key, value in hyperparameters.items():
            problem = _hyperparameter_problem(key, value, defaults[key])
            if problem:
                raise ConfigError(
                    f"{self.name}: hyperparameter {key!r} {problem}, got {value!r} "
                    "(from CRIMEJOB_HYPERPARAMETERS or the caller)"
                )
        self.hp: dict[str, Any] = {**defaults, **hyperparameters}

    @classmethod
    def default_hyperparameters(cls) -> dict[str, Any]:
        return {"horizon": 1}

    def hyperparameters(self) -> dict[str, Any]:
        return dict(self.hp)

    @property
    def horizon(self) -> int:
        """Weeks from the history's last week to the week forecast (1 = the next week)."""
        return int(self.hp.get("horizon", 1))

    def target_week(self, history: GridHistory) -> date:
        """The week ``predict(history)`` forecasts: ``horizon`` weeks after the last one."""
        return history.last_week + timedelta(weeks=self.horizon)

    def fit(self, history: GridHistory) -> FitReport:
        """Learn from every week in ``history`` (full retrain). Baselines learn nothing."""
        return FitReport(mode="none")

    def update(self, history: GridHistory) -> FitReport:
        """Fine-tune on the newest weeks of ``history``, starting from the current state."""
        return self.fit(history)

    @abc.abstractmethod
    def _predict(self, history: GridHistory) -> np.ndarray:
        """(rows, cols) expected counts for :meth:`target_week`."""

    def predict(self, history: GridHistory) -> np.ndarray:
        """Expected counts on the history's grid, float32, >= 0, for :meth:`target_week`.

        Reads nothing but ``history``: leakage is impossible by construction.
        """
        if len(history) < self.min_history:
            raise DataError(
                f"{self.name} needs {self.min_history} weeks of history, got {len(history)}"
            )
        out = np.asarray(self._predict(self.prepared(history)), np.float32).reshape(history.shape)
        return np.maximum(np.nan_to_num(out, nan=0.0, posinf=0.0), 0.0)

    def prepared(self, history: GridHistory) -> GridHistory:
        """The history as this model reads it: with ``rescale_series`` (models that do not
        see ``nibrs_share`` themselves), every week at the newest series' recording level,
        so the 2024 NIBRS switch is not read as a change in crime."""
        if self.hp.get("rescale_series", False):
            return rescale_to_current_series(history)
        return history

    def save(self, path: Path) -> Path:
        raise NotImplementedError(f"{self.name} has no artifact to save")

    def load(self, path: Path) -> Forecaster:
        raise NotImplementedError(f"{self.name} has no artifact to load")
