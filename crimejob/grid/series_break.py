"""The 2024 legacy-to-NIBRS break: one recording level for a history that spans it.

LAPD's switch to NIBRS changed how incidents are recorded, not how many happen:
2024 is covered partly by each series (legacy tapering off, NIBRS ramping up) and
NIBRS settles at its own level. A long-run mean over such a history would read
the change as a drop (or a rise) in crime. :func:`rescale_to_current_series`
expresses every earlier week at the level of the series the newest weeks are
recorded in, using the city's all-incident totals (dense, about 4,000 a week, so
the level is measured, not guessed):

- the *current era*: the newest run of weeks whose NIBRS share is within
  :data:`SAME_SERIES` of the newest week's; kept as they are;
- the *older era*: weeks before the switch started (share within
  :data:`SAME_SERIES` of the oldest week's); scaled by one factor, the ratio of
  the two eras' mean weekly totals over up to 52 weeks next to the switch (a
  whole year each, so seasons cancel);
- the *transition*: the weeks between, each scaled by the current level over
  its own (5-week smoothed) total, since coverage changes week by week.

A history that does not span a change of series is returned unchanged.
Forecasters opt in with the ``rescale_series`` hyperparameter; a model that sees
``nibrs_share`` as an input (lgbm) learns the break itself instead.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from crimejob.grid.history import GridHistory

#: Weeks whose NIBRS shares differ by less than this are recorded alike.
SAME_SERIES = 0.05
#: Weeks on each side of the switch whose totals set the eras' levels.
LEVEL_WEEKS = 52
_SMOOTH_WEEKS = 5


def series_eras(nibrs_share: np.ndarray) -> np.ndarray:
    """Per week ``"older"``, ``"transition"`` or ``"current"`` (all ``"current"`` if the
    history does not span a change of series)."""
    share = np.asarray(nibrs_share, dtype=np.float64)
    eras = np.full(len(share), "current", dtype=object)
    if len(share) < 2 or np.ptp(share) < SAME_SERIES:
        return eras
    same_as_newest = np.abs(share - share[-1]) < SAME_SERIES
    # the current era is the newest unbroken run recorded like the newest week
    breaks = np.flatnonzero(~same_as_newest)
    current_start = int(breaks[-1]) + 1 if len(breaks) else 0
    same_as_oldest = np.abs(share - share[0]) < SAME_SERIES
    older_end = int(np.argmin(same_as_oldest)) if not same_as_oldest.all() else len(share)
    eras[:current_start] = "transition"
    eras[: min(older_end, current_start)] = "older"
    return eras


def recording_factors(history: GridHistory) -> np.ndarray:
    """(T,) factors that bring each week's counts to the current series' level (1 = as is)."""
    eras = series_eras(history.nibrs_share)
    factors = np.ones(len(history), dtype=np.float64)
    current = np.flatnonzero(eras == "current")
    if len(current) == len(history):
        return factors
    totals = history.incidents.reshape(len(history), -1).sum(axis=1).astype(np.float64)
    current_level = totals[current[:LEVEL_WEEKS]].mean()
    if current_level <= 0:
        return factors  # nothing recorded lately: no level to rescale to
    older = np.flatnonzero(eras == "older")
    if len(older):
        older_level = totals[older[-LEVEL_WEEKS:]].mean()
        if older_level > 0:
            factors[older] = current_level / older_level
    transition = np.flatnonzero(eras == "transition")
    if len(transition):
        smoothed = (
            pd.Series(totals)
            .rolling(_SMOOTH_WEEKS, center=True, min_periods=1)
            .mean()
            .to_numpy()[transition]
        )
        factors[transition] = np.where(smoothed > 0, current_level / np.maximum(smoothed, 1e-9), 1)
    return factors


def rescale_to_current_series(history: GridHistory) -> GridHistory:
    """``history`` with every week's counts at the newest series' recording level."""
    factors = recording_factors(history)
    if np.all(factors == 1.0):
        return history
    scale = factors.astype(np.float32)[:, None, None]
    return GridHistory(
        history.week_starts,
        history.crime * scale,
        history.weather,
        history.incidents * scale,
        history.nibrs_share,
    )


def scores_by_era(
    rows: list[dict], history: GridHistory, metric: str = "poisson_deviance"
) -> dict[str, dict[str, dict[str, float]]]:
    """Per model and era of the target week (see :func:`series_eras`): weeks and mean
    ``metric`` of backtest ``rows`` (dicts with ``model``, ``target_week`` and the metric),
    so a backtest reports before, across and after the switch."""
    eras = series_eras(history.nibrs_share)
    era_of = {history.week(i): str(eras[i]) for i in range(len(history))}
    frame = pd.DataFrame(rows)
    if frame.empty:
        return {}
    frame["era"] = frame["target_week"].map(era_of)
    summary = frame.dropna(subset=["era"]).groupby(["model", "era"])[metric].agg(["size", "mean"])
    out: dict[str, dict[str, dict[str, float]]] = {}
    for (model, era), row in summary.iterrows():
        out.setdefault(model, {})[era] = {"weeks": int(row["size"]), "mean": float(row["mean"])}
    return out
