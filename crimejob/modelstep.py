"""The weekly run's train step: fine-tune or retrain the production model, once per week.

Idempotent: when a version of the model was already trained on data through
``week`` (a rerun of the same week), nothing is trained again, so a rerun
leaves the same rows and the same production model.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy.engine import Engine

from crimejob.gridstore import history_for_run


def train_for_week(engine: Engine, week: date, mode: str = "auto") -> dict:
    from crimejob.registry import version_trained_through
    from crimejob.training import train

    existing = version_trained_through(engine, week)
    if existing is not None:
        return {
            "skipped": True,
            "model_name": existing.model_name,
            "version": str(existing.version),
            "summary": f"{existing.model_name} v{existing.version} already trained through {week}",
        }
    history = history_for_run(engine, week)
    result = train(engine, week, mode=mode, history=history)
    return {
        "skipped": False,
        "model_name": result.model_name,
        "version": str(result.version),
        "promoted": bool(result.promoted),
        "mode": result.mode,
        "summary": result.format().splitlines()[0],
    }
