"""Forecasters: one fit/predict contract, baselines and networks alike.

The contract (every model keeps it, and the backtest, the training step and
the weekly pipeline are written once on top of it):

- ``history`` is a :class:`~crimejob.grid.history.GridHistory` of consecutive
  weeks up to W (oldest first). A forecaster sees nothing else.
- ``fit(history) -> FitReport``: learn from the weeks in ``history`` (a full
  retrain from fresh weights; a no-op for baselines).
- ``update(history) -> FitReport``: fine-tune from the current weights on the
  newest weeks of ``history``, as the weekly job does (a fit if unfitted).
- ``predict(history) -> np.ndarray``: the expected count of each of the
  4,500 cells in W+1 = ``history.target_week``, shape (60, 75), float32, >= 0.
  It reads only ``history``, so a forecast for W+1 cannot see W+1 or later.
- ``hyperparameters()``, ``save(path)``/``load(path)`` (networks: one
  ``.keras`` file), ``trainable`` and ``min_history`` (weeks predict needs).

Names: the baselines :data:`BASELINES` (``last_week``, ``mean_4w``,
``mean_13w``, ``mean_52w``, ``ewma``, and the field's ``mean_all``,
``kde_mean``, ``incident_share``, ``lgbm``), ``seed_cnn`` (the prototype) and
``rate_cnn`` (ours, the default; ``CRIMEJOB_MODEL`` overrides it) and
``sparse_cnn`` (ours, redesigned for sparse real counts: a learned correction
to an empirical-Bayes rate).
"""

from __future__ import annotations

from typing import Any

from crimejob.errors import UnknownModelError
from crimejob.models.forecasters.base import FitReport, Forecaster
from crimejob.models.forecasters.baselines import BASELINES, make_baseline

NETWORKS = ("seed_cnn", "rate_cnn", "sparse_cnn")
DEFAULT_MODEL = "rate_cnn"

__all__ = [
    "BASELINES",
    "DEFAULT_MODEL",
    "NETWORKS",
    "FitReport",
    "Forecaster",
    "available",
    "default_model",
    "get_forecaster",
]


def default_model() -> str:
    """The model the weekly job trains and forecasts with: ``CRIMEJOB_MODEL`` or rate_cnn."""
    from crimejob.config import get_settings

    name = get_settings().model or DEFAULT_MODEL
    if name not in available():
        raise ValueError(f"CRIMEJOB_MODEL={name!r} is not a model; choose from {available()}")
    return name


def available() -> list[str]:
    """Every forecaster name :func:`get_forecaster` accepts."""
    return [*BASELINES, *NETWORKS]


def get_forecaster(name: str, **overrides: Any) -> Forecaster:
    """A fresh, unfitted forecaster; ``overrides`` replace default hyperparameters."""
    if name in BASELINES:
        return make_baseline(name, **overrides)
    if name in NETWORKS:
        from crimejob.quiet import import_backend

        import_backend()  # without TensorFlow's start-up noise (crimejob -v shows it)
    if name == "seed_cnn":
        from crimejob.models.forecasters.seed_cnn import SeedCNN

        return SeedCNN(**overrides)
    if name == "rate_cnn":
        from crimejob.models.forecasters.rate_cnn import RateCNN

        return RateCNN(**overrides)
    if name == "sparse_cnn":
        from crimejob.models.forecasters.sparse_cnn import SparseCNN

        return SparseCNN(**overrides)
    raise UnknownModelError(f"unknown model {name!r}; choose from {', '.join(available())}")


def check_model_names(names: list[str]) -> None:
    """Fail in one line, before any work, on a name :func:`get_forecaster` would refuse."""
    unknown = [n for n in names if n not in available()]
    if unknown or not names:
        raise UnknownModelError(
            f"unknown model(s) {', '.join(map(repr, unknown)) or '(none given)'}; "
            f"choose from {', '.join(available())}"
        )
