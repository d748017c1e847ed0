"""Crime-type mix forecast: the expected count of each category in each cell next week.

The Buffalo prototype classified an incident's type from place and time; asked as
a forecast it reads: for each cell and next week, how many incidents of each
category, and so the probability that an incident there is of each type.

Expected count of category c in cell i = the cell's level (its mean weekly
incidents of all kinds over the last ``level_weeks``) times its mix p[c, i].

- :class:`ShrunkMix` (ours): the cell's category counts over its whole history,
  shrunk towards its division's pooled mix (the city's for cells of no division):
  ``p = (n + kappa * prior) / (N + kappa)``. A cell with few incidents says little
  about its own mix; ``kappa`` (how many incidents the prior is worth) is chosen by
  log loss on the newest ``validation_weeks`` of the history, predicted from the
  weeks before them, never on the weeks forecast.
- :class:`LongRunMix` (the baseline the issue asks for): each cell's own long-run
  mix, with the Jeffreys half-count per category so an unseen category is
  unlikely, not impossible (a raw zero would make the log loss infinite).

Scores (:func:`score_mix`): multi-class log loss over the target week's incidents
(-mean log p of each incident's category in its cell), Poisson deviance per
category over cells, and the severity-weighted count (:mod:`crimejob.serving.severity`)
by MAE and R² over the active cells.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from crimejob.grid.categories import CATEGORIES, category_of
from crimejob.models.metrics import poisson_deviance_per_cell, score_severity
from crimejob.serving.severity import severity

KAPPAS = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0, 10000.0)
JEFFREYS = 0.5


@dataclass(frozen=True)
class CategoryHistory:
    """Weekly incident counts per category and cell: ``counts[t, c, i]``."""

    week_starts: np.ndarray  # (T,) datetime64[D]
    counts: np.ndarray  # (T, C, N) float32

    def __len__(self) -> int:
        return len(self.week_starts)

    def through(self, t: int) -> CategoryHistory:
        return CategoryHistory(self.week_starts[: t + 1], self.counts[: t + 1])


def category_history(
    records: pd.DataFrame, week_starts: np.ndarray, n_cells: int
) -> CategoryHistory:
    """From incident records (``occurred_at``, ``cell_id``, ``series``, ``crm_cd`` or
    ``nibr_code``: the dev world's and the portal's shape), one incident each."""
    code = records["crm_cd"].where(records["series"] == "legacy", records["nibr_code"])
    pairs = pd.DataFrame({"series": records["series"], "code": code.astype(str)})
    distinct = pairs.drop_duplicates()
    lookup = {
        (s, c): CATEGORIES.index(category_of(s, c))
        for s, c in zip(distinct["series"], distinct["code"], strict=True)
    }
    category = np.array([lookup[k] for k in zip(pairs["series"], pairs["code"], strict=True)])
    day = records["occurred_at"].to_numpy().astype("datetime64[D]")
    week = ((day - week_starts[0]).astype(np.int64)) // 7
    keep = (week >= 0) & (week < len(week_starts))
    counts = np.zeros((len(week_starts), len(CATEGORIES), n_cells), np.float32)
    np.add.at(counts, (week[keep], category[keep], records["cell_id"].to_numpy()[keep]), 1)
    return CategoryHistory(np.asarray(week_starts, "datetime64[D]"), counts)


def _level(counts: np.ndarray, weeks: int) -> np.ndarray:
    """(N,) mean weekly incidents of all kinds over the last ``weeks``."""
    return counts[-weeks:].sum(axis=1).mean(axis=0)


def log_loss(mix: np.ndarray, actual: np.ndarray) -> float:
    """Mean -log p over incidents: ``mix`` (C, N) probabilities, ``actual`` (C, N) counts."""
    total = actual.sum()
    if total == 0:
        return float("nan")
    return float(-(actual * np.log(np.maximum(mix, 1e-12))).sum() / total)


class LongRunMix:
    """Each cell's own long-run mix (Jeffreys half-counts) times its recent level."""

    name = "long_run_mix"

    def __init__(self, level_weeks: int = 52) -> None:
        self.level_weeks = level_weeks

    def fit(self, history: CategoryHistory) -> LongRunMix:
        return self

    def mix(self, history: CategoryHistory) -> np.ndarray:
        n = history.counts.sum(axis=0).astype(np.float64) + JEFFREYS
        return n / n.sum(axis=0, keepdims=True)

    def predict(self, history: CategoryHistory) -> np.ndarray:
        """(C, N) expected counts of each category in each cell next week."""
        return self.mix(history) * _level(history.counts, self.level_weeks)


class RecentMix(LongRunMix):
    """The mix of the cell's last ``level_weeks`` only: with the level, the 52-week mean
    count of each category (Jeffreys half-counts aside)."""

    name = "recent_mix"

    def mix(self, history: CategoryHistory) -> np.ndarray:
        n = history.counts[-self.level_weeks :].sum(axis=0).astype(np.float64) + JEFFREYS
        return n / n.sum(axis=0, keepdims=True)


class ShrunkMix(LongRunMix):
    """The cell's mix shrunk towards its division's (empirical Bayes, see the module)."""

    name = "shrunk_mix"

    def __init__(
        self, labels: np.ndarray | None = None, level_weeks: int = 52, validation_weeks: int = 13
    ) -> None:
        super().__init__(level_weeks)
        self.labels = None if labels is None else np.asarray(labels).ravel()
        self.validation_weeks = validation_weeks
        self.kappa = 20.0

    def _prior(self, n: np.ndarray) -> np.ndarray:
        """(C, N) the pooled mix of each cell's division (the city's for label 0)."""
        city = n.sum(axis=1) + JEFFREYS
        city = city / city.sum()
        prior = np.repeat(city[:, None], n.shape[1], axis=1)
        if self.labels is None:
            return prior
        for code in np.unique(self.labels[self.labels > 0]):
            mask = self.labels == code
            pooled = n[:, mask].sum(axis=1) + JEFFREYS
            prior[:, mask] = (pooled / pooled.sum())[:, None]
        return prior

    def _shrunk(self, n: np.ndarray, kappa: float) -> np.ndarray:
        return (n + kappa * self._prior(n)) / (n.sum(axis=0, keepdims=True) + kappa)

    def fit(self, history: CategoryHistory) -> ShrunkMix:
        """Choose kappa by log loss on the newest weeks, predicted from the weeks before."""
        v = self.validation_weeks
        if len(history) <= v:
            return self
        n = history.counts[:-v].sum(axis=0).astype(np.float64)
        held = history.counts[-v:].sum(axis=0).astype(np.float64)
        losses = [log_loss(self._shrunk(n, k), held) for k in KAPPAS]
        self.kappa = KAPPAS[int(np.nanargmin(losses))]
        return self

    def mix(self, history: CategoryHistory) -> np.ndarray:
        return self._shrunk(history.counts.sum(axis=0).astype(np.float64), self.kappa)


def score_mix(
    model: LongRunMix, history: CategoryHistory, actual: np.ndarray, active: np.ndarray
) -> dict[str, float]:
    """One target week: log loss, per-category deviance (mean over all cells), and the
    severity forecast's MAE and R² over the ``active`` cells."""
    expected = model.predict(history)
    mix = model.mix(history)
    scores = {"log_loss": log_loss(mix, actual)}
    for c, name in enumerate(CATEGORIES):
        scores[f"deviance_{name}"] = float(poisson_deviance_per_cell(expected[c], actual[c]).mean())
    sev = score_severity(severity(expected)[active], severity(actual)[active])
    scores["severity_mae"], scores["severity_r2"] = sev["mae"], sev["r2"]
    return scores
