"""The model registry in ``ml``: versions, artifacts, the production pointer.

Every trained network version is a row in ``ml.model_versions`` (name,
version, parent version, data trained through, window, hyperparameters,
validation metrics, artifact path, promoted or not) and a ``.keras`` file
under ``CRIMEJOB_MODEL_DIR`` (default ``models/``) at
``<model>/v<version>.keras``. The production version of a model is its
newest promoted version (what that network contributes to the weekly champion
decision); ``production_version(engine)`` without a name means the configured
default model (``CRIMEJOB_MODEL``, else ``rate_cnn``).
Promotion decisions are rows in ``ml.promotion_decisions``: the gate's
(``kind = 'gate'``, :mod:`crimejob.models.training`) and each week's choice of
production among all contenders (``kind = 'champion'``, :mod:`crimejob.models.champion`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from crimejob.config import get_settings
from crimejob.db import connect
from crimejob.errors import DataError
from crimejob.models.forecasters import BASELINES, Forecaster, default_model, get_forecaster

#: Hyperparameters that only set the training budget; the rest define the design.
BUDGET_KEYS = frozenset(
    {
        "epochs",
        "batch_size",
        "gpu_batch_size",
        "learning_rate",
        "validation_fraction",
        "min_validation_weeks",
        "patience",
        "max_train_windows",
        "finetune_epochs",
        "finetune_windows",
        "finetune_validation_weeks",
        "finetune_learning_rate",
        "seed",
    }
)


@dataclass(frozen=True)
class ModelVersion:
    model_name: str
    version: int
    parent_version: int | None
    mode: str
    design_hash: str
    data_through: date
    trained_through: date
    train_first_target: date
    train_weeks: int
    validation_weeks: list[date]
    last_retrain_week: date
    hyperparameters: dict[str, Any]
    fit: dict[str, Any]
    validation: dict[str, Any]
    artifact_path: str
    promoted: bool

    @property
    def label(self) -> str:
        return f"{self.model_name} v{self.version}"


def design_hash(model_name: str, hyperparameters: dict[str, Any]) -> str:
    """A short hash of what defines the network (not its training budget)."""
    design = {k: v for k, v in hyperparameters.items() if k not in BUDGET_KEYS}
    text = json.dumps({"model": model_name, "design": design}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def model_dir() -> Path:
    return get_settings().model_dir


def artifact_path_for(model_name: str, version: int) -> Path:
    return model_dir() / model_name / f"v{version:04d}.keras"


_COLUMNS = (
    "model_name, version, parent_version, mode, design_hash, data_through, trained_through, "
    "train_first_target, train_weeks, validation_weeks, last_retrain_week, hyperparameters, "
    "fit, validation, artifact_path, promoted"
)


def _from_row(row: Any) -> ModelVersion:
    data = dict(row._mapping)
    data["validation_weeks"] = list(data["validation_weeks"] or [])
    # NaN metrics are stored as null (JSON has no NaN): read them back as NaN, so
    # comparisons and formatting treat them as "not a number", not as None.
    data["validation"] = _none_to_nan(data["validation"] or {})
    return ModelVersion(**data)


def _none_to_nan(value: Any) -> Any:
    if value is None:
        return float("nan")
    if isinstance(value, dict):
        return {k: _none_to_nan(v) for k, v in value.items()}
    return value


def production_version(
    bind: Engine | Connection, model_name: str | None = None
) -> ModelVersion | None:
    """The newest promoted version of ``model_name`` (default: the configured model)."""
    name = model_name or default_model()
    query = sa.text(
        f"SELECT {_COLUMNS} FROM ml.model_versions WHERE model_name = :m AND promoted "
        "ORDER BY version DESC LIMIT 1"
    )
    with connect(bind) as conn:
        row = conn.execute(query, {"m": name}).first()
    return _from_row(row) if row else None


def get_version(bind: Engine | Connection, model_name: str, version: int) -> ModelVersion:
    query = sa.text(
        f"SELECT {_COLUMNS} FROM ml.model_versions WHERE model_name = :m AND version = :v"
    )
    with connect(bind) as conn:
        row = conn.execute(query, {"m": model_name, "v": version}).first()
    if row is None:
        raise DataError(f"{model_name} v{version} is not in the registry")
    return _from_row(row)


def versions(bind: Engine | Connection, model_name: str) -> list[ModelVersion]:
    """Every registered version of a model, oldest first."""
    query = sa.text(
        f"SELECT {_COLUMNS} FROM ml.model_versions WHERE model_name = :m ORDER BY version"
    )
    with connect(bind) as conn:
        return [_from_row(r) for r in conn.execute(query, {"m": model_name})]


def find_version_for_week(
    bind: Engine | Connection, model_name: str, week: date, design: str, mode: str | None
) -> ModelVersion | None:
    """A version already trained for ``week`` with this design (a rerun reuses it)."""
    query = sa.text(
        f"SELECT {_COLUMNS} FROM ml.model_versions WHERE model_name = :m AND data_through = :w "
        "AND design_hash = :d AND (CAST(:mode AS text) IS NULL OR mode = :mode) "
        "ORDER BY version DESC LIMIT 1"
    )
    with connect(bind) as conn:
        row = conn.execute(query, {"m": model_name, "w": week, "d": design, "mode": mode}).first()
    return _from_row(row) if row else None


def latest_retrain(
    bind: Engine | Connection, model_name: str, design: str, through: date, since: date
) -> ModelVersion | None:
    """The newest retrained version of this design with ``data_through`` in
    ``since..through``, promoted or not: the lineage's last attempt at a retrain."""
    query = sa.text(
        f"SELECT {_COLUMNS} FROM ml.model_versions WHERE model_name = :m AND mode = 'retrain' "
        "AND design_hash = :d AND data_through BETWEEN :since AND :through "
        "ORDER BY data_through DESC, version DESC LIMIT 1"
    )
    with connect(bind) as conn:
        row = conn.execute(
            query, {"m": model_name, "d": design, "since": since, "through": through}
        ).first()
    return _from_row(row) if row else None


def load_forecaster(version: ModelVersion) -> Forecaster:
    """The forecaster of a registered version, weights loaded from its ``.keras`` file."""
    path = Path(version.artifact_path)
    if not path.is_file():
        raise DataError(f"{version.label}: artifact {path} is missing")
    forecaster = get_forecaster(version.model_name, **version.hyperparameters)
    return forecaster.load(path)


def production_forecaster(
    bind: Engine | Connection, model_name: str | None = None
) -> tuple[Forecaster, ModelVersion | None]:
    """What the weekly forecast uses: a baseline as is, or a network's production version."""
    name = model_name or default_model()
    if name in BASELINES:
        return get_forecaster(name), None
    version = production_version(bind, name)
    if version is None:
        raise DataError(f"{name} has no production version yet; run crimejob train first")
    return load_forecaster(version), version


def register_version(
    conn: Connection,
    forecaster: Forecaster,
    *,
    parent_version: int | None,
    mode: str,
    data_through: date,
    trained_through: date,
    train_first_target: date,
    train_weeks: int,
    validation_weeks: list[date],
    last_retrain_week: date,
    fit: dict[str, Any],
    validation: dict[str, Any],
) -> ModelVersion:
    """Number the version, save its artifact and insert its row (inside ``conn``'s transaction).

    An advisory lock per model serialises concurrent trainers, so version
    numbers never collide.
    """
    name = forecaster.name
    conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:m))"), {"m": "ml:" + name})
    version = conn.execute(
        sa.text(
            "SELECT coalesce(max(version), 0) + 1 FROM ml.model_versions WHERE model_name = :m"
        ),
        {"m": name},
    ).scalar_one()
    path = forecaster.save(artifact_path_for(name, version))
    hyperparameters = forecaster.hyperparameters()
    row = {
        "model_name": name,
        "version": version,
        "parent_version": parent_version,
        "mode": mode,
        "design_hash": design_hash(name, hyperparameters),
        "data_through": data_through,
        "trained_through": trained_through,
        "train_first_target": train_first_target,
        "train_weeks": train_weeks,
        "validation_weeks": validation_weeks,
        "last_retrain_week": last_retrain_week,
        "hyperparameters": hyperparameters,
        "fit": fit,
        "validation": validation,
        "artifact_path": str(path),
        "promoted": False,
    }
    try:
        conn.execute(
            sa.text(
                "INSERT INTO ml.model_versions (model_name, version, parent_version, mode, "
                "design_hash, data_through, trained_through, train_first_target, train_weeks, "
                "validation_weeks, last_retrain_week, hyperparameters, fit, validation, "
                "artifact_path) VALUES (:model_name, :version, :parent_version, :mode, "
                ":design_hash, :data_through, :trained_through, :train_first_target, "
                ":train_weeks, :validation_weeks, :last_retrain_week, "
                "CAST(:hp AS jsonb), CAST(:fit_json AS jsonb), CAST(:val_json AS jsonb), "
                ":artifact_path)"
            ),
            {
                **row,
                "hp": _json(hyperparameters),
                "fit_json": _json(fit),
                "val_json": _json(validation),
            },
        )
    except Exception:
        path.unlink(missing_ok=True)  # no orphan artifact for a version that was not recorded
        raise
    return ModelVersion(**row)


def record_decision(conn: Connection, version: ModelVersion, decision: dict[str, Any]) -> None:
    """Store the gate's decision and, if it promotes, mark the version promoted."""
    conn.execute(
        sa.text(
            "INSERT INTO ml.promotion_decisions (model_name, version, promoted, reason, metric, "
            "gate_weeks, candidate_score, production_version, production_score, baseline_name, "
            "baseline_score, details) VALUES (:model_name, :version, :promoted, :reason, "
            ":metric, :gate_weeks, :candidate_score, :production_version, :production_score, "
            ":baseline_name, :baseline_score, CAST(:details AS jsonb))"
        ),
        {
            "model_name": version.model_name,
            "version": version.version,
            **{
                k: decision.get(k)
                for k in (
                    "promoted",
                    "reason",
                    "metric",
                    "gate_weeks",
                    "candidate_score",
                    "production_version",
                    "production_score",
                    "baseline_name",
                    "baseline_score",
                )
            },
            "details": _json(decision.get("details", {})),
        },
    )
    if decision["promoted"]:
        conn.execute(
            sa.text(
                "UPDATE ml.model_versions SET promoted = true, promoted_at = now() "
                "WHERE model_name = :m AND version = :v"
            ),
            {"m": version.model_name, "v": version.version},
        )


def decisions(bind: Engine | Connection, model_name: str) -> list[dict[str, Any]]:
    """Every gate decision for a model, oldest first (champion decisions:
    :func:`crimejob.models.champion.champion_decisions`)."""
    with connect(bind) as conn:
        rows = conn.execute(
            sa.text(
                "SELECT * FROM ml.promotion_decisions WHERE model_name = :m AND kind = 'gate' "
                "ORDER BY decision_id"
            ),
            {"m": model_name},
        )
        return [dict(r._mapping) for r in rows]


def _json(value: Any) -> str:
    def default(obj: Any) -> Any:
        if isinstance(obj, date):
            return obj.isoformat()
        if hasattr(obj, "item"):
            return obj.item()
        return str(obj)

    # NaN is not JSON: store null.
    return json.dumps(_nan_to_none(value), default=default, sort_keys=True)


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_nan_to_none(v) for v in value]
    return value
