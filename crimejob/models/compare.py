"""Paired comparison of two forecasters' weekly scores: the mean difference and its SE.

One helper, used wherever two models are compared on the same weeks (the weekly
champion decision, the production backtest, the benchmarks), so "better by so
much, give or take" is computed the same way everywhere.

The standard error is Newey-West (Bartlett kernel, lag ``floor(4 (n/100)^(2/9))``:
2 on 8 weeks, 3 on 26, 4 on 156): weekly scores are autocorrelated, and an i.i.d.
standard error would be too small. On independent weeks it is close to the plain one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def newey_west_se(values: np.ndarray) -> float:
    """Standard error of the mean of a weekly series, robust to autocorrelation."""
    x = np.asarray(values, np.float64)
    n = len(x)
    if n < 2:
        return float("nan")
    e = x - x.mean()
    lag = int(np.floor(4 * (n / 100) ** (2 / 9)))
    variance = e @ e / n
    for k in range(1, min(lag, n - 1) + 1):
        variance += 2 * (1 - k / (lag + 1)) * (e[k:] @ e[:-k]) / n
    return float(np.sqrt(max(variance, 0.0) / n))


@dataclass(frozen=True)
class Paired:
    """Mean of ``a - b`` over the weeks both have, its standard error, and the weeks."""

    diff: float
    se: float
    weeks: int

    def beats(self, margin_se: float) -> bool:
        """Whether ``a`` is lower than ``b`` by more than ``margin_se`` standard errors
        (with fewer than two weeks, the SE is unknown: lower at all)."""
        if self.weeks == 0 or not np.isfinite(self.diff):
            return False
        if not np.isfinite(self.se):
            return self.diff < 0
        return self.diff < 0 and -self.diff > margin_se * self.se

    def as_dict(self) -> dict[str, float | int | None]:
        clean = lambda v: float(v) if np.isfinite(v) else None  # noqa: E731
        return {"diff": clean(self.diff), "se": clean(self.se), "weeks": self.weeks}

    def format(self) -> str:
        return f"{self.diff:+.4f} (SE {self.se:.4f}, {self.weeks} weeks)"


def paired(a: np.ndarray, b: np.ndarray) -> Paired:
    """Paired difference of two weekly series (same weeks, same order); NaN weeks dropped."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired series differ in length: {a.shape} and {b.shape}")
    d = a - b
    d = d[np.isfinite(d)]
    if len(d) == 0:
        return Paired(float("nan"), float("nan"), 0)
    return Paired(float(d.mean()), newey_west_se(d), int(len(d)))
