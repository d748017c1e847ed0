"""How the backtest gets each week's forecaster: one model as is, or the production policy.

:func:`crimejob.models.backtest.run_backtest` walks the target weeks once and, for each,
asks a policy for the forecaster to predict with (``step``). Two policies:

- :class:`ModelPolicy` (research, ``--models a,b``): one model; a network is
  retrained before the first target and fine-tuned week to week; baselines
  have nothing to fit.
- :class:`ProductionPolicy` (``--policy production``, the model name
  ``production``): the weekly job, replayed on the history. Each week, as the
  run would: the network (``CRIMEJOB_MODEL``) is retrained when it has no
  production version or every :data:`crimejob.models.training.RETRAIN_EVERY_WEEKS`
  weeks since its lineage's last retrain, else fine-tuned from its production
  version; a retrain is attempted at most every ``RETRAIN_EVERY_WEEKS``
  weeks (after one the gate refused, a week fine-tunes production, or trains
  nothing when there is none, as :func:`crimejob.models.training.train` does); the
  gate (:func:`crimejob.models.training.judge`) promotes the candidate or not; then
  the champion decision (:func:`crimejob.models.champion.decide`) chooses production
  among every baseline and the network's production version, with last week's
  champion as the incumbent. The week's forecast is the champion's. Versions
  live in memory (nothing is written to the registry), so it runs on any
  history. ``lgbm`` refits at its calendar anchors (every 13 weeks) as in the weekly
  job, where its fitted weeks are those the anchor's run saw
  (:mod:`crimejob.models.forecasters.gbm`): the backtest replays one history without
  publication dates, so its weeks through an anchor are the same at every week.
"""

from __future__ import annotations

import tempfile
from datetime import date
from pathlib import Path
from typing import Any, Protocol

from crimejob.errors import DataError
from crimejob.grid.history import GridHistory
from crimejob.models.forecasters import BASELINES, Forecaster, default_model, get_forecaster

#: The model name the backtest gives the production policy's rows.
PRODUCTION = "production"


class Policy(Protocol):
    horizon: int

    def hyperparameters(self) -> dict[str, Any]: ...

    def step(self, past: GridHistory, first: bool) -> tuple[Forecaster, dict[str, Any]]:
        """The forecaster for the week ``horizon`` after ``past``, and row extras."""


class ModelPolicy:
    """One model: a network retrains before the first target, then fine-tunes weekly."""

    def __init__(self, name: str, horizon: int, overrides: dict[str, Any]) -> None:
        self.forecaster = get_forecaster(name, **{"horizon": horizon, **overrides})
        self.horizon = self.forecaster.horizon

    def hyperparameters(self) -> dict[str, Any]:
        return self.forecaster.hyperparameters()

    def step(self, past: GridHistory, first: bool) -> tuple[Forecaster, dict[str, Any]]:
        if not self.forecaster.trainable:
            return self.forecaster, {}
        report = self.forecaster.fit(past) if first else self.forecaster.update(past)
        summary = f"{report.mode}, {report.epochs_run} epochs"
        if "correction_scale" in report.details:  # sparse_cnn's gate
            summary += f", correction scale {report.details['correction_scale']:g}"
        # A model's own scalar decisions (sparse_cnn's gate) go into the backtest's rows.
        details = {
            f"fit_{k}": v
            for k, v in report.details.items()
            if v is None or isinstance(v, (int, float, str))
        }
        return self.forecaster, {"summary": summary, **details}


class ProductionPolicy:
    """The weekly job's training, gate and champion decision, week by week (module doc)."""

    def __init__(
        self,
        horizon: int,
        network: str | None = None,
        overrides: dict[str, Any] | None = None,
        weeks: int | None = None,
        min_weeks: int | None = None,
        margin_se: float | None = None,
    ) -> None:
        from crimejob.config import get_settings

        settings = get_settings()
        self.horizon = horizon
        self.network = network
        self.overrides = dict(overrides or {})
        self.weeks = settings.champion_weeks if weeks is None else weeks
        self.min_weeks = settings.champion_min_weeks if min_weeks is None else min_weeks
        self.margin_se = settings.champion_margin_se if margin_se is None else margin_se
        self.production: Forecaster | None = None  # the network's production version
        self.trained_through: date | None = None
        self.last_retrain: date | None = None
        self.last_attempt: date | None = None  # the newest retrain, promoted or not
        self.version = 0  # versions trained, as the registry would number them
        self.production_version: int | None = None
        self.incumbent: tuple[str, str] | None = None
        self._dir = tempfile.TemporaryDirectory(prefix="crimejob-policy-")

    @classmethod
    def for_default_model(
        cls, horizon: int, overrides: dict[str, dict[str, Any]] | None = None
    ) -> ProductionPolicy:
        """The policy the weekly job runs: ``CRIMEJOB_MODEL``'s network (none if a
        baseline is configured), its budget from ``overrides[network]``."""
        name = default_model()
        network = None if name in BASELINES else name
        return cls(horizon, network, (overrides or {}).get(network or "", {}))

    def hyperparameters(self) -> dict[str, Any]:
        from crimejob.models.training import RETRAIN_EVERY_WEEKS

        network_hp = (
            get_forecaster(
                self.network, **{**self.overrides, "horizon": self.horizon}
            ).hyperparameters()
            if self.network
            else None
        )
        return {
            "network": self.network,
            "network_hyperparameters": network_hp,
            "retrain_every_weeks": RETRAIN_EVERY_WEEKS,
            "champion_weeks": self.weeks,
            "champion_min_weeks": self.min_weeks,
            "champion_margin_se": self.margin_se,
            "horizon": self.horizon,
        }

    def _copy(self, forecaster: Forecaster) -> Forecaster:
        """A separate forecaster with the same weights (the fine-tune must not touch
        the production version's)."""
        path = Path(self._dir.name) / f"v{self.version}.keras"
        forecaster.save(path)
        copy = get_forecaster(forecaster.name, **forecaster.hyperparameters())
        return copy.load(path)

    def _train(self, past: GridHistory) -> dict[str, Any]:
        """The weekly train step on ``past``: retrain or fine-tune, then the gate."""
        from crimejob.models.registry import BUDGET_KEYS
        from crimejob.models.training import RETRAIN_EVERY_WEEKS, judge

        week = past.last_week
        due = (
            self.production is None
            or self.last_retrain is None
            or (week - self.last_retrain).days // 7 >= RETRAIN_EVERY_WEEKS
        )
        if (
            due
            and self.last_attempt is not None
            and ((week - self.last_attempt).days // 7 < RETRAIN_EVERY_WEEKS)
        ):  # the last retrain was refused less than RETRAIN_EVERY_WEEKS weeks ago
            if self.production is None:
                return {
                    "gate": f"not trained: the retrain for {self.last_attempt} did not pass "
                    f"the gate; one is due every {RETRAIN_EVERY_WEEKS} weeks"
                }
            due = False
        try:
            if due:
                candidate = get_forecaster(
                    self.network, **{**self.overrides, "horizon": self.horizon}
                )
                report = candidate.fit(past)
                retrained = week
            else:
                candidate = self._copy(self.production)
                candidate.hp.update({k: v for k, v in self.overrides.items() if k in BUDGET_KEYS})
                report = candidate.update(past)
                retrained = self.last_retrain
        except DataError as exc:
            return {"gate": f"not trained: {exc}"}
        if not report.train_targets:
            return {"gate": "not trained: no training window"}
        if due:
            self.last_attempt = week
        self.version += 1
        _, decision = judge(candidate, report, past, self.production, self.trained_through)
        if decision["promoted"]:
            self.production = candidate
            self.trained_through = report.trained_through
            self.last_retrain = retrained
            self.production_version = self.version
        return {
            "trained": f"{self.network} v{self.version} ({report.mode})",
            "gate": ("promoted: " if decision["promoted"] else "") + decision["reason"],
        }

    def step(self, past: GridHistory, first: bool) -> tuple[Forecaster, dict[str, Any]]:
        from crimejob.models.champion import Contender, baseline_contenders, decide

        info: dict[str, Any] = {}
        if self.network:
            info.update(self._train(past))
        contenders = baseline_contenders(past, self.horizon)
        if self.production is not None:
            contenders.insert(
                0,
                Contender(
                    self.network,
                    str(self.production_version),
                    self.production,
                    self.trained_through,
                ),
            )
        decision = decide(
            past,
            self.horizon,
            contenders,
            self.incumbent,
            weeks=self.weeks,
            min_weeks=self.min_weeks,
            margin_se=self.margin_se,
        )
        champion = decision.champion
        changed = self.incumbent != (champion.model_name, champion.model_version)
        self.incumbent = (champion.model_name, champion.model_version)
        info.update(
            champion=champion.label,
            champion_changed=changed,
            champion_reason=decision.reason,
            summary=f"production {champion.label}" + (" (new)" if changed else ""),
        )
        return champion.forecaster, info


def make_policy(name: str, horizon: int, overrides: dict[str, dict[str, Any]]) -> Policy:
    """The policy behind a backtest model name: ``production``, or any forecaster."""
    if name == PRODUCTION:
        return ProductionPolicy.for_default_model(horizon, overrides)
    return ModelPolicy(name, horizon, overrides.get(name, {}))
