"""How a forecast of one week is judged: error metrics and the field's hotspot metrics.

Every model, baseline or network, is scored by :func:`score_forecast`, in the
backtest, in the training gate and in the weekly pipeline, so the numbers are
comparable everywhere. All of it is vectorised numpy over the 4,500 cells.

Definitions (design notes, "Measuring quality"):

- ``mae``, ``rmse``: per cell-week, over all cells; ``*_active`` over the
  active cells only (cells with any incident in the training history; when no
  mask is given every cell counts as active).
- ``poisson_deviance``: mean over cells of ``2 * (y log(y / mu) - (y - mu))``
  with ``y log(y / mu) = 0`` where ``y = 0``. Inside the logarithm predictions
  are floored at :data:`RATE_FLOOR` (one incident per thousand weeks), so a
  model that claims "certainly zero" where an incident happens gets a large,
  finite penalty, and a zero forecast of a zero cell costs nothing.
- Hotspots at an area budget (1% = 45 cells, 5% = 225 cells): the cells with
  the highest predictions are flagged, ties broken by ``cell_id`` (lower
  first). ``hit_rate`` = incidents in flagged cells / all incidents; ``pai`` =
  hit rate / share of area flagged; ``pei`` = incidents in flagged cells /
  incidents in the best possible set of the same number of cells. In a week
  with no incident at all these three are NaN (undefined, not zero), and means
  over weeks skip them.
- ``actual_total``: incidents in the week (all cells).
"""

from __future__ import annotations

import warnings

import numpy as np

RATE_FLOOR = 1e-3
BUDGETS = {"1pct": 0.01, "5pct": 0.05}

METRIC_KEYS = (
    "mae",
    "rmse",
    "poisson_deviance",
    "hit_rate_1pct",
    "pai_1pct",
    "pei_1pct",
    "hit_rate_5pct",
    "pai_5pct",
    "pei_5pct",
    "actual_total",
    "mae_active",
    "rmse_active",
    "poisson_deviance_active",
)


def poisson_deviance_per_cell(predicted: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """Unit Poisson deviance of each cell (predictions floored at :data:`RATE_FLOOR`)."""
    mu = np.asarray(predicted, np.float64)
    y = np.asarray(actual, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(y > 0, y, 1.0) / np.maximum(mu, RATE_FLOOR)
        y_log = np.where(y > 0, y * np.log(ratio), 0.0)
    return 2.0 * (y_log - (y - mu))


def flagged_cells(predicted: np.ndarray, n_flagged: int) -> np.ndarray:
    """Indices of the ``n_flagged`` highest predictions, ties broken by lower cell_id."""
    flat = np.asarray(predicted, np.float64).ravel()
    # A stable sort of the negated values keeps equal predictions in cell_id order.
    return np.argsort(-flat, kind="stable")[:n_flagged]


def budget_cells(n_cells: int, share: float) -> int:
    """How many cells an area budget flags (45 and 225 of 4,500)."""
    return max(1, int(round(share * n_cells)))


def _hotspot_metrics(pred: np.ndarray, actual: np.ndarray) -> dict[str, float]:
    n = pred.size
    total = float(actual.sum())
    best_first = np.sort(actual)[::-1]
    out: dict[str, float] = {}
    for label, share in BUDGETS.items():
        k = budget_cells(n, share)
        caught = float(actual[flagged_cells(pred, k)].sum())
        best = float(best_first[:k].sum())
        hit_rate = caught / total if total > 0 else float("nan")
        out[f"hit_rate_{label}"] = hit_rate
        out[f"pai_{label}"] = hit_rate / (k / n) if total > 0 else float("nan")
        out[f"pei_{label}"] = caught / best if best > 0 else float("nan")
    return out


def score_forecast(
    predicted: np.ndarray, actual: np.ndarray, active: np.ndarray | None = None
) -> dict[str, float]:
    """Score one week's forecast against what happened; keys are :data:`METRIC_KEYS`.

    ``predicted`` and ``actual`` are (60, 75) grids or flat arrays of the same
    size in cell_id order; ``active`` is a boolean mask of the same size.
    """
    pred = np.asarray(predicted, np.float64).ravel()
    act = np.asarray(actual, np.float64).ravel()
    if pred.shape != act.shape:
        raise ValueError(f"predicted has {pred.size} cells, actual {act.size}")
    if not np.all(np.isfinite(pred)):
        raise ValueError("predicted contains NaN or infinite values")
    mask = np.ones(act.shape, bool) if active is None else np.asarray(active, bool).ravel()
    if mask.shape != act.shape:
        raise ValueError(f"active mask has {mask.size} cells, want {act.size}")

    error = pred - act
    deviance = poisson_deviance_per_cell(pred, act)
    scores = {
        "mae": float(np.abs(error).mean()),
        "rmse": float(np.sqrt(np.square(error).mean())),
        "poisson_deviance": float(deviance.mean()),
        **_hotspot_metrics(pred, act),
        "actual_total": float(act.sum()),
    }
    if mask.any():
        scores["mae_active"] = float(np.abs(error[mask]).mean())
        scores["rmse_active"] = float(np.sqrt(np.square(error[mask]).mean()))
        scores["poisson_deviance_active"] = float(deviance[mask].mean())
    else:
        scores["mae_active"] = scores["rmse_active"] = float("nan")
        scores["poisson_deviance_active"] = float("nan")
    return {key: scores[key] for key in METRIC_KEYS}


def active_cells(crime_history: np.ndarray) -> np.ndarray:
    """Cells with any incident in the given weeks (T, 60, 75) -> (60, 75) bool."""
    return np.asarray(crime_history).sum(axis=0) > 0


def mean_scores(rows: list[dict[str, float]]) -> dict[str, float]:
    """Mean of each metric over weeks, skipping NaN (weeks with no incident)."""
    if not rows:
        return {key: float("nan") for key in METRIC_KEYS}
    table = np.array([[row[key] for key in METRIC_KEYS] for row in rows], np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column stays NaN
        means = np.nanmean(table, axis=0)
    return {key: float(value) for key, value in zip(METRIC_KEYS, means, strict=True)}
