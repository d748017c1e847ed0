"""Training a network for week W: retrain or fine-tune, validate, gate, register.

``train(engine, week)`` loads the grids up to ``week`` only, then:

1. **Mode.** ``retrain`` fits fresh weights on every window (validation: the
   newest 20% of targets); ``finetune`` warm-starts from the production
   version and trains on the newest windows (validation: the newest
   ``finetune_validation_weeks`` targets). ``auto`` retrains when there is no
   production version, its design (non-budget hyperparameters) differs, its
   artifact is gone, or :data:`RETRAIN_EVERY_WEEKS` (13, a quarter: often
   enough to follow drift and the seasons, rare enough that the weekly run
   stays a cheap fine-tune) have passed since the lineage's last retrain;
   otherwise it fine-tunes. A retrain is attempted at most every
   :data:`RETRAIN_EVERY_WEEKS` weeks: while the lineage's last retrain, less
   than that many weeks ago, did not pass the gate, a week with a production
   version of the design fine-tunes it, and a week without one trains nothing
   (mode ``skipped``; the champion is chosen among the contenders there are).
   Before, such a lineage retrained from scratch every week until a candidate
   passed: a network that never beats the baselines cost a full retrain per
   week, live and in every backfilled week, for a candidate the gate refused
   again.
2. **Validation.** The candidate, the production version and every baseline
   forecast each validation week from the weeks before it, and are scored
   with :func:`crimejob.models.metrics.score_forecast`.
3. **Gate.** Only validation weeks that neither the candidate nor the
   production version was fitted to count (``gate_weeks``: after the
   production version's ``trained_through``). The candidate is promoted only
   if its mean Poisson deviance there is lower than the production version's
   *and* the best baseline's. The decision and all contenders' numbers go to
   ``ml.promotion_decisions``; the version, promoted or not, to
   ``ml.model_versions``.

Reruns are idempotent: a version already trained for the same week and
design is returned, not trained again.

Horizon: the model learns to forecast ``horizon`` weeks past its history (a
hyperparameter, so part of the design). The weekly run trains on the weeks
complete after the publication lag at the run's horizon (``crimejob.grid.lag``:
3 by default); a production version trained for another horizon is no rival.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import numpy as np
from sqlalchemy.engine import Engine

from crimejob.config import get_settings
from crimejob.errors import CrimejobError, DataError
from crimejob.grid.history import GridHistory
from crimejob.models.forecasters import (
    BASELINES,
    FitReport,
    Forecaster,
    default_model,
    get_forecaster,
)
from crimejob.models.metrics import active_cells, mean_scores, score_forecast
from crimejob.models.registry import (
    BUDGET_KEYS,
    ModelVersion,
    decisions,
    design_hash,
    find_version_for_week,
    latest_retrain,
    load_forecaster,
    production_version,
    record_decision,
    register_version,
)

log = logging.getLogger(__name__)

RETRAIN_EVERY_WEEKS = 13
GATE_METRIC = "poisson_deviance"
MODES = ("auto", "retrain", "finetune")
SKIPPED = "skipped"  # the mode of a week that trains nothing (a refused retrain is recent)


@dataclass
class TrainResult:
    model_name: str
    week: date
    mode: str  # "retrain", "finetune", or "none" for a baseline
    mode_reason: str
    version: int | None = None
    parent_version: int | None = None
    promoted: bool = False
    decision_reason: str = ""
    validation: dict[str, float] = field(default_factory=dict)
    gate: dict[str, Any] = field(default_factory=dict)
    fit: dict[str, Any] = field(default_factory=dict)
    artifact_path: str | None = None
    reused: bool = False
    seconds: float = 0.0

    def format(self) -> str:
        if self.version is None:
            return f"train {self.model_name} for {self.week}: {self.mode_reason}"
        lines = [
            f"train {self.model_name} for {self.week}: {self.mode} ({self.mode_reason})"
            + (" [already trained: reused]" if self.reused else ""),
            f"  version v{self.version}"
            + (f" from v{self.parent_version}" if self.parent_version else "")
            + f", artifact {self.artifact_path}",
        ]
        if self.fit:
            lines.append(
                f"  fit: {self.fit.get('train_weeks')} training weeks through "
                f"{self.fit.get('last_train_target')}, {self.fit.get('epochs_run')} epochs, "
                f"{self.fit.get('seconds')} s"
            )
        if self.validation:
            v = {k: _float(self.validation.get(k)) for k in ("poisson_deviance", "mae", "pai_5pct")}
            lines.append(
                f"  validation: poisson_deviance {v['poisson_deviance']:.4f} "
                f"mae {v['mae']:.4f} pai_5pct {v['pai_5pct']:.3f}"
            )
        lines.append(f"  {'PROMOTED' if self.promoted else 'not promoted'}: {self.decision_reason}")
        return "\n".join(lines)


def _float(value: Any) -> float:
    """A stored metric as a float: NULL (None) and non-numbers read as NaN."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


NO_VALIDATION = "not promoted: no validation weeks"


def gate_decision(
    candidate: dict[str, float],
    production: dict[str, float] | None,
    baselines: dict[str, dict[str, float]],
    metric: str = GATE_METRIC,
) -> dict[str, Any]:
    """Promote only if ``candidate`` beats production (if any) and the best baseline.

    Every argument holds mean metrics on the same gate weeks; lower ``metric``
    is better. Returns the decision with the numbers it was based on.
    """
    best_name = min(baselines, key=lambda b: baselines[b][metric]) if baselines else None
    best = baselines[best_name][metric] if best_name else None
    score = candidate[metric]
    reasons = []
    if not np.isfinite(score):
        reasons.append(f"candidate {metric} is not finite")
    if production is not None and not score < production[metric]:
        reasons.append(f"{metric} {score:.4f} does not beat production's {production[metric]:.4f}")
    if best is not None and not score < best:
        reasons.append(f"{metric} {score:.4f} does not beat {best_name}'s {best:.4f}")
    promoted = not reasons
    if promoted:
        against = [f"{best_name} {best:.4f}"] if best_name else []
        if production is not None:
            against.insert(0, f"production {production[metric]:.4f}")
        reasons.append(f"{metric} {score:.4f} beats " + " and ".join(against))
    return {
        "promoted": promoted,
        "reason": "; ".join(reasons),
        "metric": metric,
        "candidate_score": score,
        "production_score": production[metric] if production else None,
        "baseline_name": best_name,
        "baseline_score": best,
    }


def gate_or_refuse(
    validation_weeks: list[date],
    gate_weeks: list[date],
    candidate: dict[str, float],
    production: dict[str, float] | None,
    baselines: dict[str, dict[str, float]],
) -> dict[str, Any]:
    """The gate's decision, or a refusal when there is nothing to judge the candidate on:
    no validation weeks, or no finite candidate metric (all NULL). Never raises."""
    if not validation_weeks or not np.isfinite(_float(candidate.get(GATE_METRIC))):
        return {"promoted": False, "reason": NO_VALIDATION, "metric": GATE_METRIC}
    if not gate_weeks:
        return {
            "promoted": False,
            "reason": "no validation week unseen by the production version",
            "metric": GATE_METRIC,
        }
    return gate_decision(candidate, production, baselines)


def judge(
    candidate: Forecaster,
    report: FitReport,
    history: GridHistory,
    production: Forecaster | None,
    production_trained_through: date | None,
) -> tuple[dict[str, float], dict[str, Any]]:
    """Validate a freshly fitted ``candidate`` and decide on it (the gate).

    Returns its mean metrics on its validation weeks and the gate decision with every
    contender's numbers on the gate weeks: the validation weeks after the production
    version's ``trained_through`` (weeks neither was fitted to). The weekly training
    and the production backtest (:class:`crimejob.models.backtest.ProductionPolicy`) both
    decide here.
    """
    validation_weeks = report.validation_targets
    candidate_rows = _score_weeks(candidate, history, validation_weeks)
    validation = mean_scores(candidate_rows)
    gate_weeks = [
        w
        for w in validation_weeks
        if production_trained_through is None or w > production_trained_through
    ]
    keep = [w in gate_weeks for w in validation_weeks]
    candidate_gate = mean_scores([r for r, k in zip(candidate_rows, keep, strict=True) if k])
    production_gate = None
    if production is not None and gate_weeks:
        production_gate = mean_scores(_score_weeks(production, history, gate_weeks))
    baseline_gate = {
        b: mean_scores(
            _score_weeks(get_forecaster(b, horizon=candidate.horizon), history, gate_weeks)
        )
        for b in BASELINES
    }
    decision = gate_or_refuse(
        validation_weeks, gate_weeks, candidate_gate, production_gate, baseline_gate
    )
    decision.update(
        gate_weeks=gate_weeks,
        details={
            "candidate": candidate_gate,
            "production": production_gate,
            "baselines": baseline_gate,
            "gate_weeks": [w.isoformat() for w in gate_weeks],
        },
    )
    return validation, decision


def hyperparameter_overrides() -> dict[str, Any]:
    """Hyperparameter overrides from ``CRIMEJOB_HYPERPARAMETERS`` (a JSON object), if set."""
    text = get_settings().hyperparameters
    if not text:
        return {}
    try:
        parsed = json.loads(text)
    except ValueError as exc:
        raise CrimejobError(f"CRIMEJOB_HYPERPARAMETERS is not JSON: {exc}") from exc
    if not isinstance(parsed, dict):
        raise CrimejobError("CRIMEJOB_HYPERPARAMETERS must be a JSON object")
    return parsed


def _horizon(version: ModelVersion) -> int:
    return int(version.hyperparameters.get("horizon", 1))


def _choose_mode(
    mode: str, production: ModelVersion | None, design: str, week: date
) -> tuple[str, str]:
    from pathlib import Path

    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if mode == "retrain":
        return "retrain", "asked for a retrain"
    problem = None
    if production is None:
        problem = "no production version"
    elif production.design_hash != design:
        problem = f"the design changed since production v{production.version}"
    elif not Path(production.artifact_path).is_file():
        problem = f"production v{production.version}'s artifact is missing"
    if mode == "finetune":
        if problem:
            raise DataError(f"cannot fine-tune: {problem}; retrain instead")
        return "finetune", f"asked to fine-tune v{production.version}"
    if problem:
        return "retrain", problem
    since = (week - production.last_retrain_week).days // 7
    if since >= RETRAIN_EVERY_WEEKS:
        return (
            "retrain",
            f"scheduled: {since} weeks since the last retrain (every {RETRAIN_EVERY_WEEKS})",
        )
    return "finetune", f"weekly fine-tune of production v{production.version}"


def _after_refused_retrain(
    engine: Engine,
    name: str,
    design: str,
    week: date,
    production: ModelVersion | None,
    why: str,
) -> tuple[str, str]:
    """The mode when ``auto`` chose a retrain: a retrain is attempted at most every
    :data:`RETRAIN_EVERY_WEEKS` weeks. After one the gate refused, less than that many
    weeks ago, a lineage with a production version of this design fine-tunes it, and
    one without trains nothing (``SKIPPED``) until the next retrain is due."""
    from pathlib import Path

    attempt = latest_retrain(
        engine, name, design, week, week - timedelta(weeks=RETRAIN_EVERY_WEEKS - 1)
    )
    if attempt is None or attempt.promoted:
        return "retrain", why
    due = attempt.data_through + timedelta(weeks=RETRAIN_EVERY_WEEKS)
    refused = (
        f"{attempt.label}, retrained for {attempt.data_through}, did not pass the gate; the "
        f"next retrain is due for {due} (every {RETRAIN_EVERY_WEEKS} weeks)"
    )
    usable = (
        production is not None
        and production.design_hash == design
        and Path(production.artifact_path).is_file()
    )
    if not usable:
        return SKIPPED, f"not trained: {why}, and {refused}"
    if attempt.data_through <= production.last_retrain_week:
        return "retrain", why
    return "finetune", f"weekly fine-tune of production v{production.version} ({refused})"


def _score_weeks(
    forecaster: Forecaster, history: GridHistory, weeks: list[date]
) -> list[dict[str, float]]:
    rows = []
    for week in weeks:
        past = history.through(week - timedelta(weeks=forecaster.horizon))
        actual = history.crime[history.index_of(week)]
        rows.append(score_forecast(forecaster.predict(past), actual, active_cells(past.incidents)))
    return rows


def _reused(existing: ModelVersion, engine: Engine, week: date, started: float) -> TrainResult:
    past = [d for d in decisions(engine, existing.model_name) if d["version"] == existing.version]
    last = past[-1] if past else {}
    return TrainResult(
        model_name=existing.model_name,
        week=week,
        mode=existing.mode,
        mode_reason=f"v{existing.version} was already trained for this week",
        version=existing.version,
        parent_version=existing.parent_version,
        promoted=existing.promoted,
        decision_reason=last.get("reason", ""),
        validation=existing.validation,
        gate=dict(last.get("details") or {}),
        fit=existing.fit,
        artifact_path=existing.artifact_path,
        reused=True,
        seconds=time.perf_counter() - started,
    )


def train(
    engine: Engine,
    week: date,
    model_name: str | None = None,
    mode: str = "auto",
    overrides: dict[str, Any] | None = None,
    history: GridHistory | None = None,
) -> TrainResult:
    """Train ``model_name`` (default: the configured model) on weeks up to ``week``.

    ``overrides`` replace hyperparameters (default: ``CRIMEJOB_HYPERPARAMETERS``,
    JSON; tests and benchmarks pass smaller budgets; the registered row records
    what was used). ``history``
    replaces the grids read from the database: the weekly run passes the
    history as it was when ``week`` ended (no late reports from later on).
    """
    from crimejob.grid.gridstore import load_history

    started = time.perf_counter()
    name = model_name or default_model()
    if name in BASELINES:
        return TrainResult(name, week, "none", "a baseline: nothing to train, always available")
    overrides = dict(hyperparameter_overrides() if overrides is None else overrides)
    candidate = get_forecaster(name, **overrides)
    design = design_hash(name, candidate.hyperparameters())

    existing = find_version_for_week(engine, name, week, design, None if mode == "auto" else mode)
    if existing is not None:
        return _reused(existing, engine, week, started)

    if history is None:
        history = load_history(engine, through=week)
    if len(history) == 0 or history.last_week != week:
        raise DataError(f"grid.weekly has no rows for {week}; aggregate it before training")
    production = production_version(engine, name)
    if production is not None and _horizon(production) != candidate.horizon:
        # Trained to forecast another number of weeks ahead (the publication lag setting
        # changed, or it predates the lag): not a rival on these weeks; the forecast step
        # does not use it either. The candidate retrains and must beat the baselines.
        log.info(
            "%s forecasts %d week(s) ahead, the candidate %d: not compared",
            production.label, _horizon(production), candidate.horizon,
        )  # fmt: skip
        production = None
    if production is not None and production.data_through > week:
        raise DataError(
            f"production {production.label} was trained through {production.data_through}, "
            f"after {week}: training for an earlier week would start from the future"
        )
    chosen, why = _choose_mode(mode, production, design, week)
    if chosen == "retrain" and mode == "auto":
        chosen, why = _after_refused_retrain(engine, name, design, week, production, why)
        if chosen == SKIPPED:
            return TrainResult(name, week, SKIPPED, why, seconds=time.perf_counter() - started)

    if chosen == "retrain":
        report = candidate.fit(history)
        parent, last_retrain = None, week
    else:
        candidate = load_forecaster(production)
        candidate.hp.update({k: v for k, v in overrides.items() if k in BUDGET_KEYS})
        report = candidate.update(history)
        parent, last_retrain = production.version, production.last_retrain_week

    if not report.train_targets:
        raise DataError(
            f"{name}: {len(history)} week(s) of history hold no training window "
            f"{candidate.horizon} week(s) ahead; load more history"
        )
    validation_weeks = report.validation_targets
    validation, decision = judge(
        candidate,
        report,
        history,
        load_forecaster(production) if production is not None else None,
        production.trained_through if production is not None else None,
    )
    decision["production_version"] = production.version if production else None

    with engine.begin() as conn:
        version = register_version(
            conn,
            candidate,
            parent_version=parent,
            mode=chosen,
            data_through=week,
            trained_through=report.trained_through,
            train_first_target=min(report.train_targets),
            train_weeks=len(report.train_targets),
            validation_weeks=validation_weeks,
            last_retrain_week=last_retrain,
            fit=report.as_dict(),
            validation=validation,
        )
        record_decision(conn, version, decision)
    log.info("%s: %s", version.label, decision["reason"])
    return TrainResult(
        model_name=name,
        week=week,
        mode=chosen,
        mode_reason=why,
        version=version.version,
        parent_version=parent,
        promoted=bool(decision["promoted"]),
        decision_reason=decision["reason"],
        validation=validation,
        gate=decision["details"],
        fit=report.as_dict(),
        artifact_path=version.artifact_path,
        seconds=time.perf_counter() - started,
    )
