"""Production is the champion: each week, the best contender on weeks none was fitted to.

Every weekly forecast step (:func:`crimejob.serving.forecast_store.forecast_next_week`)
chooses which forecast is production, so that production is never clearly worse
than the best baseline:

- **Contenders**: every baseline (:data:`crimejob.models.forecasters.BASELINES`) and
  every network's production version in the registry at the run's horizon
  (any registered network: ``rate_cnn``, ``seed_cnn``, ...). A network version
  becomes its lineage's production version through the training gate
  (:mod:`crimejob.models.training`), so this week's freshly trained candidate is a
  contender once the gate has promoted it.
- **Window**: the newest ``CRIMEJOB_CHAMPION_WEEKS`` (K, default 8) complete
  weeks of the run's history that are after every network contender's
  ``trained_through`` (no contender was fitted to their counts; baselines fit
  nothing, and ``lgbm``/``kde_mean``/``incident_share`` tune only on the weeks
  before each origin). A network version whose ``trained_through`` leaves fewer
  than ``CRIMEJOB_CHAMPION_MIN_WEEKS`` (default 4) of the K weeks is not a
  contender this week. Each contender forecasts each window week from the history
  through (week - horizon), exactly as the run would have, and is scored with
  :func:`crimejob.models.metrics.score_forecast`: the backtest's and the gate's code.
  The window is computed from the loaded history, so the same rule chooses on
  the very first run (no scored weeks yet) and every week after: no model is
  hard-coded as a fallback.
- **Rule**: the challenger is the contender with the lowest mean Poisson
  deviance on the window. It replaces the incumbent (the model production the
  week before; for a network, its lineage's production version now) only if its
  paired mean difference to it is below zero by more than
  ``CRIMEJOB_CHAMPION_MARGIN_SE`` (default 1) standard errors
  (:mod:`crimejob.models.compare`, Newey-West); otherwise the incumbent stays. So
  production does not flip-flop on noise, and stays within that margin of the
  best baseline. Without an incumbent (the first run, or the incumbent is no
  contender any more) the challenger wins outright.

Every decision is a row of ``ml.promotion_decisions`` (``kind = 'champion'``)
with each contender's mean metrics, the weeks, and the paired difference and SE
against the champion, the incumbent and the best baseline;
``bi.forecasts.production_reason`` carries its reason.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from crimejob.config import get_settings
from crimejob.db import connect
from crimejob.errors import DataError
from crimejob.grid.history import GridHistory
from crimejob.models.compare import Paired, paired
from crimejob.models.forecasters import BASELINES, Forecaster, available, get_forecaster
from crimejob.models.metrics import active_cells, mean_scores, score_forecast

log = logging.getLogger(__name__)

METRIC = "poisson_deviance"
BASELINE_VERSION = "baseline"


@dataclass
class Contender:
    """One model that may be production: a baseline, or a network's registry version."""

    model_name: str
    model_version: str  # "baseline", or the registry version as text (as in ml.forecasts)
    forecaster: Forecaster
    trained_through: date | None = None  # networks: newest target week fitted to

    @property
    def is_baseline(self) -> bool:
        return self.model_version == BASELINE_VERSION

    @property
    def label(self) -> str:
        return self.model_name if self.is_baseline else f"{self.model_name} v{self.model_version}"


@dataclass
class ChampionDecision:
    """Who is production for ``target_week`` and why, with every contender's numbers."""

    target_week: date | None
    history_through: date
    horizon: int
    window: list[date]
    champion: Contender
    reason: str
    incumbent: Contender | None = None
    vs_incumbent: Paired | None = None
    best_baseline: str | None = None
    vs_baseline: Paired | None = None
    margin_se: float = 1.0
    #: label -> {"model_name", "model_version", "mean": {metric: value}, "weeks", "paired"}
    contenders: dict[str, dict[str, Any]] = field(default_factory=dict)
    excluded: dict[str, str] = field(default_factory=dict)  # label -> why not a contender

    def details(self) -> dict[str, Any]:
        return {
            "contenders": self.contenders,
            "excluded": self.excluded,
            "window": [w.isoformat() for w in self.window],
            "rule": f"lowest mean {METRIC}; a challenger must beat the incumbent by more "
            f"than {self.margin_se:g} SE (paired, Newey-West)",
        }


# --- contenders --------------------------------------------------------------------------


def baseline_contenders(history: GridHistory, horizon: int) -> list[Contender]:
    """Every baseline that can forecast from ``history`` at ``horizon``."""
    out = []
    for name in BASELINES:
        forecaster = get_forecaster(name, horizon=horizon)
        if len(history) >= forecaster.min_history:
            out.append(Contender(name, BASELINE_VERSION, forecaster))
    return out


_PRODUCTION_VERSIONS = sa.text(
    "SELECT model_name, version FROM ml.production_versions ORDER BY model_name"
)


def network_contenders(
    bind: Engine | Connection, horizon: int, data_through: date
) -> tuple[list[Contender], dict[str, str]]:
    """Each registered network's production version trained for ``horizon`` weeks ahead
    on data up to ``data_through`` at most; the others, with why they are left out."""
    from crimejob.models.registry import get_version, load_forecaster

    contenders, excluded = [], {}
    with connect(bind) as conn:
        rows = conn.execute(_PRODUCTION_VERSIONS).all()
    for row in rows:
        if row.model_name not in available() or row.model_name in BASELINES:
            continue
        version = get_version(bind, row.model_name, row.version)
        label = version.label
        trained_for = int(version.hyperparameters.get("horizon", 1))
        if trained_for != horizon:
            excluded[label] = f"forecasts {trained_for} week(s) ahead, the run needs {horizon}"
        elif version.data_through > data_through:
            excluded[label] = f"trained on data through {version.data_through}, after the history"
        else:
            try:
                model = load_forecaster(version)
            except DataError as exc:
                excluded[label] = str(exc)
                continue
            contenders.append(
                Contender(row.model_name, str(version.version), model, version.trained_through)
            )
    return contenders, excluded


# --- the window and the scores -------------------------------------------------------------


def champion_window(
    history: GridHistory, horizon: int, weeks: int, after: date | None = None
) -> list[date]:
    """The newest ``weeks`` weeks of ``history`` after ``after`` that can be forecast from
    at least two earlier weeks at ``horizon`` (the least any baseline needs), oldest first."""
    first_index = horizon + 1  # history.through(target - horizon) holds >= 2 weeks
    candidates = [
        history.week(i)
        for i in range(first_index, len(history))
        if after is None or history.week(i) > after
    ]
    return candidates[-weeks:] if weeks > 0 else []


def score_window(
    contender: Contender, history: GridHistory, window: list[date]
) -> list[dict[str, float]]:
    """Each window week forecast from the weeks at least ``horizon`` before it, scored."""
    rows = []
    for week in window:
        past = history.through(week - timedelta(weeks=contender.forecaster.horizon))
        actual = history.crime[history.index_of(week)]
        predicted = contender.forecaster.predict(past)
        rows.append(score_forecast(predicted, actual, active_cells(past.incidents)))
    return rows


# --- the rule --------------------------------------------------------------------------------


def choose(
    losses: dict[str, np.ndarray], incumbent: str | None, margin_se: float
) -> tuple[str, str, Paired | None]:
    """The champion among ``losses`` (label -> per-week loss on the same weeks, lower is
    better): the lowest mean, unless the incumbent is within ``margin_se`` SE of it.

    Returns (champion label, reason, paired difference challenger - incumbent).
    """
    if not losses:
        raise DataError("no contender to choose a champion from")
    means = {label: float(np.nanmean(v)) if np.isfinite(v).any() else np.inf
             for label, v in losses.items()}  # fmt: skip
    challenger = min(means, key=lambda label: (means[label], label))
    if incumbent is None or incumbent not in losses:
        return (
            challenger,
            f"{challenger} has the lowest mean {METRIC} {means[challenger]:.4f}",
            None,
        )
    if challenger == incumbent:
        return incumbent, f"{incumbent} (production) keeps the lowest mean {METRIC} " \
            f"{means[incumbent]:.4f}", None  # fmt: skip
    versus = paired(losses[challenger], losses[incumbent])
    if versus.beats(margin_se):
        return (
            challenger,
            f"{challenger} {means[challenger]:.4f} beats production {incumbent} "
            f"{means[incumbent]:.4f} by {-versus.diff:.4f} (SE {versus.se:.4f}), more than "
            f"{margin_se:g} SE",
            versus,
        )
    return (
        incumbent,
        f"{incumbent} (production) {means[incumbent]:.4f} stays: {challenger} "
        f"{means[challenger]:.4f} is lower by {-versus.diff:.4f} (SE {versus.se:.4f}), "
        f"not more than {margin_se:g} SE",
        versus,
    )


# --- the decision --------------------------------------------------------------------------


_INCUMBENT = sa.text(
    "SELECT model_name, model_version FROM ml.forecasts "
    "WHERE is_production AND target_week < :t ORDER BY target_week DESC LIMIT 1"
)


def previous_production(bind: Engine, target_week: date) -> tuple[str, str] | None:
    """(model_name, model_version) flagged production for the newest week before
    ``target_week``, if any."""
    with bind.connect() as conn:
        row = conn.execute(_INCUMBENT, {"t": target_week}).first()
    return (row.model_name, row.model_version) if row else None


def decide(
    history: GridHistory,
    horizon: int,
    contenders: list[Contender],
    incumbent: tuple[str, str] | None = None,
    target_week: date | None = None,
    weeks: int | None = None,
    min_weeks: int | None = None,
    margin_se: float | None = None,
    excluded: dict[str, str] | None = None,
) -> ChampionDecision:
    """Choose the champion among ``contenders`` on the window of ``history`` (module doc).

    ``incumbent`` is production the week before as (model_name, model_version): a network
    incumbent is matched by name (its lineage's production version now). Settings default
    to ``CRIMEJOB_CHAMPION_WEEKS``, ``..._MIN_WEEKS`` and ``..._MARGIN_SE``.
    """
    settings = get_settings()
    weeks = settings.champion_weeks if weeks is None else weeks
    min_weeks = settings.champion_min_weeks if min_weeks is None else min_weeks
    margin_se = settings.champion_margin_se if margin_se is None else margin_se
    excluded = dict(excluded or {})
    newest = champion_window(history, horizon, weeks)
    if not newest:
        raise DataError(
            f"cannot choose a champion: {len(history)} week(s) of history leave no week to "
            f"score a forecast {horizon} week(s) ahead on"
        )
    eligible = []
    for c in contenders:
        unseen = [w for w in newest if c.trained_through is None or w > c.trained_through]
        if c.trained_through is not None and len(unseen) < min(min_weeks, len(newest)):
            excluded[c.label] = (
                f"trained through {c.trained_through}: only {len(unseen)} of the newest "
                f"{len(newest)} weeks unseen (needs {min_weeks})"
            )
        elif len(history.through(newest[0] - timedelta(weeks=horizon))) < max(
            1, c.forecaster.min_history
        ):
            excluded[c.label] = f"needs {c.forecaster.min_history} weeks of history"
        else:
            eligible.append(c)
    after = max((c.trained_through for c in eligible if c.trained_through), default=None)
    window = [w for w in newest if after is None or w > after]

    rows = {c.label: score_window(c, history, window) for c in eligible}
    losses = {label: np.array([r[METRIC] for r in rs], np.float64) for label, rs in rows.items()}
    by_label = {c.label: c for c in eligible}
    incumbent_label = None
    if incumbent is not None:
        name, version = incumbent
        matches = [
            c for c in eligible
            if c.model_name == name and (c.is_baseline == (version == BASELINE_VERSION))
        ]  # fmt: skip
        if matches:
            incumbent_label = matches[0].label
    winner, reason, versus = choose(losses, incumbent_label, margin_se)
    if incumbent is not None and incumbent_label is None:
        name, version = incumbent
        was = name if version == BASELINE_VERSION else f"{name} v{version}"
        reason += f" (previous production {was} is not a contender now)"
    baselines = {c.label: losses[c.label] for c in eligible if c.is_baseline}
    best_baseline = (
        min(baselines, key=lambda b: (float(np.mean(baselines[b])), b)) if baselines else None
    )
    table = {}
    for label, rs in rows.items():
        c = by_label[label]
        table[label] = {
            "model_name": c.model_name,
            "model_version": c.model_version,
            "trained_through": c.trained_through.isoformat() if c.trained_through else None,
            "mean": mean_scores(rs),
            "weeks": len(rs),
            "paired_vs_champion": paired(losses[label], losses[winner]).as_dict(),
        }
    vs_baseline = paired(losses[winner], losses[best_baseline]) if best_baseline else None
    reason = (
        f"{reason}; on {len(window)} week(s) {window[0]}..{window[-1]} none of the "
        f"{len(eligible)} contenders was fitted to"
    )
    if best_baseline and best_baseline != winner:
        reason += f"; vs best baseline {best_baseline}: {vs_baseline.format()}"
    return ChampionDecision(
        target_week=target_week,
        history_through=history.last_week,
        horizon=horizon,
        window=window,
        champion=by_label[winner],
        reason=reason,
        incumbent=by_label.get(incumbent_label) if incumbent_label else None,
        vs_incumbent=paired(losses[winner], losses[incumbent_label]) if incumbent_label else None,
        best_baseline=best_baseline,
        vs_baseline=vs_baseline,
        margin_se=margin_se,
        contenders=table,
        excluded=excluded,
    )


def record(conn: Connection, decision: ChampionDecision) -> None:
    """Store ``decision`` as the champion decision of its target week (a rerun replaces it)."""
    from crimejob.models.registry import _json

    champion = decision.champion
    contenders = decision.contenders
    incumbent = decision.incumbent
    conn.execute(
        sa.text("DELETE FROM ml.promotion_decisions WHERE kind = 'champion' AND target_week = :t"),
        {"t": decision.target_week},
    )
    conn.execute(
        sa.text(
            "INSERT INTO ml.promotion_decisions (kind, model_name, version, promoted, reason, "
            "metric, gate_weeks, candidate_score, production_version, production_score, "
            "baseline_name, baseline_score, details, target_week, history_through, "
            "horizon_weeks, champion_model, champion_version, incumbent_model, "
            "incumbent_version, diff_vs_incumbent, se_vs_incumbent, diff_vs_baseline, "
            "se_vs_baseline, margin_se) VALUES ('champion', :model_name, :version, :promoted, "
            ":reason, :metric, :weeks, :score, :production_version, :production_score, "
            ":baseline_name, :baseline_score, CAST(:details AS jsonb), :target_week, "
            ":history_through, :horizon, :model_name, :champion_version, :incumbent_model, "
            ":incumbent_version, :diff_inc, :se_inc, :diff_base, :se_base, :margin_se)"
        ),
        {
            "model_name": champion.model_name,
            "version": None if champion.is_baseline else int(champion.model_version),
            "promoted": incumbent is None or incumbent.label != champion.label,
            "reason": decision.reason,
            "metric": METRIC,
            "weeks": decision.window,
            "score": contenders[champion.label]["mean"][METRIC],
            "production_version": (
                int(incumbent.model_version) if incumbent and not incumbent.is_baseline else None
            ),
            "production_score": contenders[incumbent.label]["mean"][METRIC] if incumbent else None,
            "baseline_name": decision.best_baseline,
            "baseline_score": (
                contenders[decision.best_baseline]["mean"][METRIC]
                if decision.best_baseline
                else None
            ),
            "details": _json(decision.details()),
            "target_week": decision.target_week,
            "history_through": decision.history_through,
            "horizon": decision.horizon,
            "champion_version": champion.model_version,
            "incumbent_model": incumbent.model_name if incumbent else None,
            "incumbent_version": incumbent.model_version if incumbent else None,
            "diff_inc": _finite(decision.vs_incumbent.diff) if decision.vs_incumbent else None,
            "se_inc": _finite(decision.vs_incumbent.se) if decision.vs_incumbent else None,
            "diff_base": _finite(decision.vs_baseline.diff) if decision.vs_baseline else None,
            "se_base": _finite(decision.vs_baseline.se) if decision.vs_baseline else None,
            "margin_se": decision.margin_se,
        },
    )


def _finite(value: float) -> float | None:
    return float(value) if value is not None and np.isfinite(value) else None


def champion_decisions(bind: Engine) -> list[dict[str, Any]]:
    """Every champion decision, oldest target week first (details as a dict)."""
    with bind.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT * FROM ml.promotion_decisions WHERE kind = 'champion' "
                "ORDER BY target_week, decision_id"
            )
        )
        out = [dict(r._mapping) for r in rows]
    for row in out:
        if isinstance(row.get("details"), str):
            row["details"] = json.loads(row["details"])
    return out
