"""The weekly run's train step: fine-tune or retrain the production model, once per week.

Idempotent: a version already trained for ``week`` with the same design is
reused, not trained again, so a rerun leaves the same rows and the same
production model. ``CRIMEJOB_HYPERPARAMETERS`` (JSON) overrides the model's
hyperparameters, e.g. ``{"epochs": 5}`` for a smaller training budget.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy.engine import Engine


def train_for_week(engine: Engine, week: date, mode: str = "auto") -> dict:
    from crimejob.gridstore import history_for_run
    from crimejob.training import train

    history = history_for_run(engine, week)
    result = train(engine, week, mode=mode, history=history)
    return {
        "skipped": bool(result.reused),
        "model_name": result.model_name,
        "version": result.version,
        "promoted": bool(result.promoted),
        "mode": result.mode,
        "reason": result.decision_reason or result.mode_reason,
        "summary": result.format().splitlines()[0],
    }
