"""Rolling-origin backtest: every model scored by the same code on the same weeks.

For each target week in ``[start, end]``, in order, each model is given the
history of the weeks *before* the target only (at ``horizon`` h > 1, of the
weeks up to h weeks before it, as when the newest weeks are not published
yet), predicts the target, and is
scored with :func:`crimejob.models.metrics.score_forecast` (active cells = cells with
any incident in that history). Which forecaster predicts each week is the
model's *policy* (:mod:`crimejob.models.policies`): a model named alone is itself
(a network: a full retrain before the first target, then a fine-tune
(``update``) week to week; baselines have nothing to fit); the model name
``production`` replays the weekly job's policy (retraining schedule, fine-tunes,
gate and champion decision), so "how good would production have been" is the
same loop, the same scoring and the same table. The summary gives every model's
paired difference to the best baseline with its standard error.

Uncertainty: each forecast's predictive distribution is the one production
writes (:mod:`crimejob.models.uncertainty`: negative binomial with the dispersion fitted
on the model's own errors over the 13 weeks before, inside the history it was
given). Per week the rows carry its coverage (conservative, all and active
cells; randomised PIT on active cells), the dispersion, and the flags' Jaccard
overlap with the model's previous week; per model, a reliability table
(predicted against observed by decile, pooled over all target weeks).

Budgets: a model's hyperparameters can be overridden per model (``epochs``,
``max_train_windows``, ``finetune_epochs``, ``finetune_windows``, ...), from
the ``overrides`` argument or, for the CLI, the environment variable
``CRIMEJOB_BACKTEST_OVERRIDES`` holding JSON such as
``{"seed_cnn": {"epochs": 2, "max_train_windows": 24}}``. The hyperparameters
each model actually ran with are part of the result and are printed under
the table, so a reduced budget is never hidden.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import warnings
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import numpy as np
from sqlalchemy.engine import Engine

from crimejob.config import get_settings
from crimejob.errors import DataError, check_range
from crimejob.grid.history import GridHistory
from crimejob.grid.weeks import weeks_between
from crimejob.models.compare import paired
from crimejob.models.forecasters import BASELINES, check_model_names
from crimejob.models.metrics import (
    METRIC_KEYS,
    active_cells,
    flag_jaccard,
    mean_scores,
    score_forecast,
)
from crimejob.models.policies import PRODUCTION, make_policy
from crimejob.models.uncertainty import (
    Predictive,
    dispersion_from_history,
    format_reliability,
    interval_coverage,
    pit_coverage,
    reliability_table,
)

log = logging.getLogger(__name__)

_COLUMNS = (
    ("mae", "MAE"),
    ("rmse", "RMSE"),
    ("poisson_deviance", "PoisDev"),
    ("mae_active", "MAE_act"),
    ("rmse_active", "RMSE_act"),
    ("poisson_deviance_active", "PDev_act"),
    ("hit_rate_1pct", "HR@1%"),
    ("pai_1pct", "PAI@1%"),
    ("pei_1pct", "PEI@1%"),
    ("hit_rate_5pct", "HR@5%"),
    ("pai_5pct", "PAI@5%"),
    ("pei_5pct", "PEI@5%"),
    ("pei_10pct", "PEI@10%"),
    ("mass_ratio", "mass"),
)
#: Per-week figures beside the metrics: uncertainty and stability (see the module doc).
EXTRA_KEYS = (
    "coverage_90",
    "coverage_90_active",
    "pit_coverage_90",
    "pit_coverage_90_all",
    "interval_width_active",
    "dispersion",
    "jaccard_1pct",
    "jaccard_5pct",
)
_EXTRA_COLUMNS = (
    ("coverage_90", "cov90"),
    ("coverage_90_active", "cov90act"),
    ("pit_coverage_90", "PIT90act"),
    ("pit_coverage_90_all", "PIT90all"),
    ("interval_width_active", "width"),
    ("dispersion", "alpha"),
    ("jaccard_1pct", "Jac@1%"),
    ("jaccard_5pct", "Jac@5%"),
)


@dataclass
class BacktestResult:
    """Per-week rows and per-model means of one backtest."""

    models: list[str]
    target_weeks: list[date]
    rows: list[dict[str, Any]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    hyperparameters: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: model -> (weeks, 60, 75) forecasts, kept only when asked (keep_predictions=True)
    predictions: dict[str, np.ndarray] = field(default_factory=dict)
    #: model -> predicted against observed by decile, pooled over the target weeks
    reliability: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def extra_means(self) -> dict[str, dict[str, float]]:
        """Mean of each uncertainty and stability figure per model (NaN weeks skipped)."""
        out = {}
        for model in self.models:
            table = np.array(
                [[r.get(k, np.nan) for k in EXTRA_KEYS] for r in self.rows if r["model"] == model],
                np.float64,
            ).reshape(-1, len(EXTRA_KEYS))
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                means = (
                    np.nanmean(table, axis=0) if len(table) else np.full(len(EXTRA_KEYS), np.nan)
                )
            out[model] = {k: float(v) for k, v in zip(EXTRA_KEYS, means, strict=True)}
        return out

    def means(self) -> dict[str, dict[str, float]]:
        """Mean of each metric per model, over the target weeks (NaN weeks skipped)."""
        return {
            model: mean_scores([r for r in self.rows if r["model"] == model])
            for model in self.models
        }

    def comparisons(self, metric: str = "poisson_deviance") -> dict[str, Any]:
        """Each model's mean paired difference to the best baseline of this backtest (the
        baseline with the lowest mean ``metric``) and its standard error
        (:mod:`crimejob.models.compare`); empty without a baseline."""
        baselines = [m for m in self.models if m in BASELINES]
        if not baselines:
            return {}
        means = self.means()
        best = min(baselines, key=lambda b: (means[b][metric], b))

        def series(model: str) -> np.ndarray:
            return np.array([r[metric] for r in self.rows if r["model"] == model], np.float64)

        reference = series(best)
        return {
            "metric": metric,
            "best_baseline": best,
            "models": {m: paired(series(m), reference).as_dict() for m in self.models if m != best},
        }

    def format_policy(self) -> str:
        """Per target week: which model the production policy made production, its score."""
        rows = [r for r in self.rows if r["model"] == PRODUCTION]
        if not rows:
            return ""
        lines = [
            "production policy, week by week",
            f"{'target_week':<12} {'production':<18} {'PoisDev':>8}  gate",
        ]
        for r in rows:
            mark = " *" if r.get("champion_changed") else "  "
            lines.append(
                f"{r['target_week']!s:<12} {r.get('champion', ''):<18}{mark}"
                f"{r['poisson_deviance']:>8.4f}  {r.get('gate', '')[:90]}"
            )
        lines.append("(* production changed that week)")
        return "\n".join(lines)

    def format_table(self) -> str:
        """The per-model means as a fixed-width table, budgets underneath."""
        weeks = self.target_weeks
        title = (
            f"backtest {weeks[0]} .. {weeks[-1]}: {len(weeks)} target weeks, "
            "means per model (lower is better for errors and deviance)"
            if weeks
            else "backtest: no target weeks"
        )
        header = f"{'model':<10} " + " ".join(f"{label:>8}" for _, label in _COLUMNS)
        header += f" {'seconds':>8}"
        lines = [title, header, "-" * len(header)]
        for model, scores in self.means().items():
            cells = " ".join(f"{scores[key]:>8.4f}" for key, _ in _COLUMNS)
            lines.append(f"{model:<10} {cells} {self.seconds.get(model, 0.0):>8.1f}")
        for model in self.models:
            hp = self.hyperparameters.get(model)
            if hp:
                lines.append(f"  {model}: {json.dumps(hp, sort_keys=True, default=str)}")
        header = f"{'model':<10} " + " ".join(f"{label:>8}" for _, label in _EXTRA_COLUMNS)
        lines += [
            "",
            "90% intervals (cov90: share inside, all cells; cov90act: active cells; "
            "PIT90: randomised PIT, 0.90 expected when calibrated), dispersion, stability",
            header,
            "-" * len(header),
        ]
        for model, extra in self.extra_means().items():
            cells = " ".join(f"{extra[key]:>8.4f}" for key, _ in _EXTRA_COLUMNS)
            lines.append(f"{model:<10} {cells}")
        comparisons = self.comparisons()
        if comparisons:
            best = comparisons["best_baseline"]
            lines += [
                "",
                f"paired difference to the best baseline ({best}) in poisson_deviance, per "
                "week: mean (Newey-West SE), weeks; negative = better than it",
            ]
            for model, d in comparisons["models"].items():
                if d["diff"] is None:
                    continue
                se = f"{d['se']:.4f}" if d["se"] is not None else "-"
                lines.append(f"{model:<18} {d['diff']:+.4f} ({se}) {d['weeks']}")
        for model, rows in self.reliability.items():
            lines += ["", f"reliability of {model} (active cells, pooled weeks)"]
            lines.append(format_reliability(rows))
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        """Per-week rows and means, JSON-ready (NaN becomes null)."""

        def clean(value: Any) -> Any:
            if isinstance(value, float) and not np.isfinite(value):
                return None
            if isinstance(value, date):
                return value.isoformat()
            return value

        return {
            "models": self.models,
            "target_weeks": [w.isoformat() for w in self.target_weeks],
            "metrics": list(METRIC_KEYS),
            "means": {
                m: {k: clean(v) for k, v in scores.items()} for m, scores in self.means().items()
            },
            "extra_metrics": list(EXTRA_KEYS),
            "extra_means": {
                m: {k: clean(v) for k, v in extra.items()}
                for m, extra in self.extra_means().items()
            },
            "reliability": self.reliability,
            "paired_vs_best_baseline": self.comparisons(),
            "seconds": self.seconds,
            "hyperparameters": self.hyperparameters,
            "rows": [{k: clean(v) for k, v in row.items()} for row in self.rows],
        }


def _target_indices(history: GridHistory, start: date, end: date) -> np.ndarray:
    wanted = np.array(weeks_between(start, end), "datetime64[D]")
    indices = np.flatnonzero(np.isin(history.week_starts, wanted))
    if len(indices) != len(wanted):
        missing = sorted(set(wanted.tolist()) - set(history.week_starts.tolist()))
        raise DataError(f"the history has no grid rows for target week(s) {missing[:5]}")
    return indices


def run_backtest(
    history: GridHistory,
    start: date,
    end: date,
    models: list[str],
    overrides: dict[str, dict[str, Any]] | None = None,
    progress: bool = False,
    keep_predictions: bool = False,
    horizon: int = 1,
) -> BacktestResult:
    """Score each model on every week from ``start`` to ``end`` (week_starts, inclusive).

    A model forecasting target index i is given ``history`` rows 0..i-horizon only.
    """
    if not models:
        raise ValueError("give at least one model to backtest")
    overrides = overrides or {}
    indices = _target_indices(history, start, end)
    targets = [history.week_starts[i].astype("datetime64[D]").item() for i in indices]
    result = BacktestResult(models=list(models), target_weeks=targets)
    for name in models:
        policy = make_policy(name, horizon, overrides)
        result.hyperparameters[name] = policy.hyperparameters()
        started = time.perf_counter()
        kept = []
        previous = None
        pooled: dict[str, list[np.ndarray]] = {"mean": [], "actual": [], "prob": []}
        running: list[dict[str, float]] = []
        for n, (i, target) in enumerate(zip(indices, targets, strict=True)):
            past = history.through(target - timedelta(weeks=policy.horizon))
            fit_started = time.perf_counter()
            forecaster, info = policy.step(past, first=n == 0)
            fit_seconds = time.perf_counter() - fit_started
            predicted = forecaster.predict(past)
            if keep_predictions:
                kept.append(predicted)
            active = active_cells(past.incidents)
            scores = score_forecast(predicted, history.crime[i], active)
            extra = _uncertainty(
                forecaster, past, predicted, history.crime[i], active, previous, pooled
            )
            previous = predicted
            result.rows.append(
                {
                    "model": name,
                    "target_week": target,
                    **scores,
                    **extra,
                    "fit_seconds": fit_seconds,
                    **info,
                }
            )
            running.append(scores)
            if progress or log.isEnabledFor(logging.INFO):
                mean = mean_scores(running)
                message = (
                    f"backtest {name} week {target} ({n + 1}/{len(targets)}): "
                    f"poisson_deviance {scores['poisson_deviance']:.4f} "
                    f"(running mean {mean['poisson_deviance']:.4f}), "
                    f"pai_5pct {scores['pai_5pct']:.3f} (running mean {mean['pai_5pct']:.3f}), "
                    f"fit {fit_seconds:.1f}s"
                )
                if info.get("summary"):
                    message += f" ({info['summary']})"
                if progress:  # on stderr: stdout is the table (and may be piped)
                    print(message, file=sys.stderr, flush=True)
                log.info(message)
        result.seconds[name] = time.perf_counter() - started
        if pooled["mean"]:
            result.reliability[name] = reliability_table(
                np.concatenate(pooled["mean"]),
                np.concatenate(pooled["actual"]),
                np.concatenate(pooled["prob"]),
            )
        if keep_predictions:
            result.predictions[name] = np.stack(kept)
    return result


def _uncertainty(
    forecaster,
    past: GridHistory,
    predicted: np.ndarray,
    actual: np.ndarray,
    active: np.ndarray,
    previous: np.ndarray | None,
    pooled: dict[str, list[np.ndarray]],
) -> dict[str, float]:
    """Coverage, dispersion and stability of one forecast (see the module docstring)."""
    mask = np.asarray(active, bool).ravel()
    mu, y = np.asarray(predicted, np.float64).ravel(), np.asarray(actual, np.float64).ravel()
    dispersion = dispersion_from_history(forecaster, past)
    predictive = Predictive(mu, dispersion)
    low, high = predictive.interval()
    prob = predictive.prob_any()
    pooled["mean"].append(mu[mask])
    pooled["actual"].append(y[mask])
    pooled["prob"].append(prob[mask])
    nan = float("nan")
    return {
        "coverage_90": interval_coverage(y, low, high),
        "coverage_90_active": interval_coverage(y[mask], low[mask], high[mask])
        if mask.any()
        else nan,
        "pit_coverage_90": pit_coverage(y[mask], Predictive(mu[mask], dispersion))
        if mask.any()
        else nan,
        "pit_coverage_90_all": pit_coverage(y, predictive),
        "interval_width_active": float(np.mean(high[mask] - low[mask])) if mask.any() else nan,
        "dispersion": dispersion,
        "jaccard_1pct": nan if previous is None else flag_jaccard(previous, predicted, 0.01),
        "jaccard_5pct": nan if previous is None else flag_jaccard(previous, predicted, 0.05),
    }


def overrides_from_env() -> dict[str, dict[str, Any]]:
    """Per-model budgets from ``CRIMEJOB_BACKTEST_OVERRIDES`` (JSON), if set."""
    text = get_settings().backtest_overrides
    if not text:
        return {}
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"CRIMEJOB_BACKTEST_OVERRIDES is not JSON: {exc}") from exc
    if not isinstance(parsed, dict) or not all(isinstance(v, dict) for v in parsed.values()):
        raise ValueError("CRIMEJOB_BACKTEST_OVERRIDES must map model names to objects")
    return parsed


def run_backtest_from_db(
    engine: Engine,
    start: date,
    end: date,
    models: list[str],
    overrides: dict[str, dict[str, Any]] | None = None,
    horizon: int = 1,
    progress: bool = False,
) -> BacktestResult:
    """The backtest on the grid rows in ``grid.weekly`` (what ``crimejob backtest`` runs).

    Loads weeks up to ``end`` (the last target's actual counts are needed to
    score it); :func:`run_backtest` hands each model only the weeks before
    its target.
    """
    check_range(start, end, "backtest")
    named = [m for m in models if m != PRODUCTION]  # "production" is a policy, not a model
    if named or not models:
        check_model_names(named)
    from crimejob.grid.gridstore import load_history

    history = load_history(engine, through=end)
    if len(history) == 0:
        raise DataError(f"grid.weekly has no weeks up to {end}; run crimejob aggregate first")
    return run_backtest(
        history,
        start,
        end,
        models,
        overrides if overrides is not None else overrides_from_env(),
        progress=progress,
        horizon=horizon,
    )
