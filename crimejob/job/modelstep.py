"""The weekly run's train step: fine-tune or retrain the production model, once per week.

Idempotent: a version already trained on the same weeks with the same design is
reused, not trained again, so a rerun leaves the same rows and the same
production model. ``CRIMEJOB_HYPERPARAMETERS`` (JSON) overrides the model's
hyperparameters, e.g. ``{"epochs": 5}`` for a smaller training budget.

The model learns what the run asks of it: the history is what the run for ``week``
may see (through the newest complete week, ``crimejob.grid.lag``) and the ``horizon``
is the run's, weeks from that history to next week (3 with the default 14-day
publication lag). A change of lag changes the design, so the next run retrains.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy.engine import Engine


def train_for_week(
    engine: Engine, week: date, mode: str = "auto", model_name: str | None = None
) -> dict:
    from crimejob.grid.gridstore import history_for_run
    from crimejob.grid.lag import run_weeks
    from crimejob.models.training import SKIPPED, hyperparameter_overrides, train

    plan = run_weeks(week)
    history = history_for_run(engine, week)
    overrides = {**hyperparameter_overrides(), "horizon": plan.horizon}
    result = train(
        engine,
        plan.history_through,
        model_name=model_name,
        mode=mode,
        overrides=overrides,
        history=history,
    )
    return {
        "skipped": bool(result.reused) or result.mode == SKIPPED,
        "model_name": result.model_name,
        "version": result.version,
        "promoted": bool(result.promoted),
        "mode": result.mode,
        "reason": result.decision_reason or result.mode_reason,
        "summary": result.format().splitlines()[0],
        "history_through": str(plan.history_through),
        "horizon_weeks": plan.horizon,
        "text": result.format(),
    }
