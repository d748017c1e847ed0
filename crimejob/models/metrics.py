"""How a forecast of one week is judged: error metrics and the field's hotspot metrics.

Every model, baseline or network, is scored by :func:`score_forecast`, in the
backtest, in the training gate and in the weekly pipeline, so the numbers are
comparable everywhere. All of it is vectorised numpy over the cells.

Definitions:

- ``mae``, ``rmse``: per cell-week, over all cells; ``*_active`` over the
  active cells only (cells with any incident of any kind in the training
  history: the police's territory; when no mask is given every cell counts).
- ``poisson_deviance``: mean over cells of ``2 * (y log(y / mu) - (y - mu))``
  with ``y log(y / mu) = 0`` where ``y = 0``. Inside the logarithm predictions
  are floored at :data:`RATE_FLOOR` (one incident per thousand weeks), so a
  model that claims "certainly zero" where an incident happens gets a large,
  finite penalty, and a zero forecast of a zero cell costs nothing.
- Hotspots at an area budget (1% = 45 cells, 5% = 225, 10% = 450 of 4,500):
  the cells with the highest predictions are flagged. A cell whose forecast is
  zero is never flagged: a model that puts all its mass in 30 cells leaves the
  rest of its budget unused, rather than flagging empty cells in ``cell_id``
  order. Ties at the budget boundary count fractionally: the tied cells share
  the slots left equally, the expected value under random tie-breaking
  (:func:`flag_weights`). ``hit_rate`` = incidents in flagged cells / all
  incidents; ``pai`` = hit rate / the budget's share of the area; ``pei`` =
  incidents in flagged cells / incidents in the best possible set of as many
  cells as the budget. So every model is compared at the same area. In a week
  with no incident at all these are NaN (undefined, not zero), and means over
  weeks skip them.
- Calibration: ``predicted_total`` (the expected incidents of the week over all
  cells), ``actual_total`` and ``mass_ratio`` = predicted_total / actual_total
  (1 is right; NaN in a week without incidents).
- Stability (not per forecast, between two): :func:`flag_jaccard`.
"""

from __future__ import annotations

import warnings

import numpy as np

RATE_FLOOR = 1e-3
BUDGETS = {"1pct": 0.01, "5pct": 0.05, "10pct": 0.10}

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
    "hit_rate_10pct",
    "pai_10pct",
    "pei_10pct",
    "predicted_total",
    "mass_ratio",
)


def poisson_deviance_per_cell(predicted: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """Unit Poisson deviance of each cell (predictions floored at :data:`RATE_FLOOR`)."""
    mu = np.asarray(predicted, np.float64)
    y = np.asarray(actual, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(y > 0, y, 1.0) / np.maximum(mu, RATE_FLOOR)
        y_log = np.where(y > 0, y * np.log(ratio), 0.0)
    return 2.0 * (y_log - (y - mu))


def budget_cells(n_cells: int, share: float) -> int:
    """How many cells an area budget flags (45, 225 and 450 of 4,500)."""
    return max(1, int(round(share * n_cells)))


def flag_weights(predicted: np.ndarray, n_flagged: int) -> np.ndarray:
    """How much of each cell a budget of ``n_flagged`` cells flags, in cell_id order.

    1 above the boundary; 0 below it and for every zero forecast; the cells tied
    at the boundary share the slots left, each weighted by the chance that
    random tie-breaking would flag it. The weights sum to ``n_flagged``, or to
    the number of positive forecasts when there are fewer.
    """
    flat = np.asarray(predicted, np.float64).ravel()
    weights = np.zeros(flat.size)
    positive = flat[flat > 0]
    k = min(int(n_flagged), positive.size)
    if k == 0:
        return weights
    boundary = np.partition(positive, positive.size - k)[positive.size - k]  # k-th largest
    above = flat > boundary
    tied = flat == boundary
    weights[above] = 1.0
    weights[tied] = (k - int(above.sum())) / int(tied.sum())
    return weights


def flagged_cells(predicted: np.ndarray, n_flagged: int) -> np.ndarray:
    """Every cell a budget flags at all (boundary ties included), highest forecast first."""
    flat = np.asarray(predicted, np.float64).ravel()
    hit = np.flatnonzero(flag_weights(flat, n_flagged) > 0)
    return hit[np.argsort(-flat[hit], kind="stable")]


def flag_jaccard(first: np.ndarray, second: np.ndarray, share: float) -> float:
    """Overlap of two forecasts' flagged cells at a budget (weighted Jaccard; 1 = same cells).

    Week-to-week stability of the hotspot map; NaN when neither flags anything.
    """
    k = budget_cells(np.asarray(first).size, share)
    a, b = flag_weights(first, k), flag_weights(second, k)
    union = np.maximum(a, b).sum()
    return float(np.minimum(a, b).sum() / union) if union > 0 else float("nan")


def hotspot_metrics(
    pred: np.ndarray, actual: np.ndarray, budgets: dict[str, float] = BUDGETS
) -> dict[str, float]:
    """Hit rate, PAI and PEI at each of ``budgets`` (float64 arrays of one size); a budget
    is scored alone, so asking for fewer gives the same numbers for those."""
    n = pred.size
    total = float(actual.sum())
    best_first = np.sort(actual)[::-1]
    out: dict[str, float] = {}
    for label, share in budgets.items():
        k = budget_cells(n, share)
        caught = float(flag_weights(pred, k) @ actual)
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

    ``predicted`` and ``actual`` are grids or flat arrays of the same size in
    cell_id order; ``active`` is a boolean mask of the same size.
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
    total, predicted_total = float(act.sum()), float(pred.sum())
    scores = {
        "mae": float(np.abs(error).mean()),
        "rmse": float(np.sqrt(np.square(error).mean())),
        "poisson_deviance": float(deviance.mean()),
        **hotspot_metrics(pred, act),
        "actual_total": total,
        "predicted_total": predicted_total,
        "mass_ratio": predicted_total / total if total > 0 else float("nan"),
    }
    if mask.any():
        scores["mae_active"] = float(np.abs(error[mask]).mean())
        scores["rmse_active"] = float(np.sqrt(np.square(error[mask]).mean()))
        scores["poisson_deviance_active"] = float(deviance[mask].mean())
    else:
        scores["mae_active"] = scores["rmse_active"] = float("nan")
        scores["poisson_deviance_active"] = float("nan")
    return {key: scores[key] for key in METRIC_KEYS}


def active_cells(incident_history: np.ndarray) -> np.ndarray:
    """Cells with any incident in the given weeks: (T, rows, cols) -> (rows, cols) bool.

    Given all-incident counts these are the cells the police record anything in
    at all (in Los Angeles about a third of the grid; the rest is ocean,
    mountains and other cities): where the ``*_active`` metrics look.
    """
    return np.asarray(incident_history).sum(axis=0) > 0


def mean_scores(rows: list[dict[str, float]]) -> dict[str, float]:
    """Mean of each metric over weeks, skipping NaN (weeks with no incident)."""
    if not rows:
        return {key: float("nan") for key in METRIC_KEYS}
    table = np.array([[row[key] for key in METRIC_KEYS] for row in rows], np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column stays NaN
        means = np.nanmean(table, axis=0)
    return {key: float(value) for key, value in zip(METRIC_KEYS, means, strict=True)}


def r_squared(predicted: np.ndarray, actual: np.ndarray) -> float:
    """Coefficient of determination over cells: 1 - SS_res / SS_tot around the actual mean.

    1 is perfect, 0 is no better than predicting the week's mean everywhere, and it can
    be negative. NaN when every actual value is the same (SS_tot = 0).
    """
    pred = np.asarray(predicted, np.float64).ravel()
    act = np.asarray(actual, np.float64).ravel()
    total = np.square(act - act.mean()).sum()
    if total == 0:
        return float("nan")
    return float(1 - np.square(act - pred).sum() / total)


def score_severity(predicted: np.ndarray, actual: np.ndarray) -> dict[str, float]:
    """How a severity-weighted count forecast of one week is judged: MAE and R² over cells
    (the LA severity project's two numbers; see crimejob/serving/severity.py)."""
    pred = np.asarray(predicted, np.float64).ravel()
    act = np.asarray(actual, np.float64).ravel()
    if pred.shape != act.shape:
        raise ValueError(f"predicted has {pred.size} cells, actual {act.size}")
    return {"mae": float(np.abs(pred - act).mean()), "r2": r_squared(pred, act)}
