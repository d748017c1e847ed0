"""Training, the registry and the promotion gate, on a real PostgreSQL."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date, timedelta

import numpy as np
import pytest
import sqlalchemy as sa

from crimejob.devworld import la_world
from crimejob.errors import DataError
from crimejob.grid.gridstore import store_history
from crimejob.models.forecasters import BASELINES, get_forecaster
from crimejob.models.registry import (
    ModelVersion,
    decisions,
    get_version,
    load_forecaster,
    production_forecaster,
    production_version,
    versions,
)
from crimejob.models.training import (
    RETRAIN_EVERY_WEEKS,
    SKIPPED,
    _after_refused_retrain,
    _choose_mode,
    gate_decision,
    train,
)

TINY = {"epochs": 2, "max_train_windows": 6, "finetune_epochs": 1, "finetune_windows": 3}
HISTORY = la_world(seed=21, start=date(2021, 1, 4), weeks=40).history()


def week(i: int) -> date:
    return HISTORY.week_starts[i].astype("datetime64[D]").item()


@pytest.fixture
def db(clean_db, tmp_path, monkeypatch):
    """The LA world's grids in grid.weekly; weeks 34..39 hold an absurd planted count."""
    monkeypatch.setenv("CRIMEJOB_MODEL_DIR", str(tmp_path / "models"))
    monkeypatch.delenv("CRIMEJOB_MODEL", raising=False)
    monkeypatch.delenv("CRIMEJOB_HYPERPARAMETERS", raising=False)
    planted = replace(HISTORY, crime=HISTORY.crime.copy())
    planted.crime[34:] = 500.0
    store_history(clean_db, planted)
    return clean_db


def promote(engine, version: int) -> None:
    """Mark a version production directly (when the gate itself is not under test)."""
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE ml.model_versions SET promoted = true WHERE version = :v"),
            {"v": version},
        )


@pytest.mark.slow
def test_a_first_training_is_a_retrain_recorded_with_everything_the_gate_used(db, tmp_path):
    result = train(db, week(33), overrides=TINY)

    assert (result.mode, result.mode_reason) == ("retrain", "no production version")
    stored = get_version(db, "rate_cnn", result.version)
    assert stored.version == 1 and stored.parent_version is None
    # Windows of 8 weeks end at weeks 7..32: 26 targets, the newest 20% (5) validate.
    assert stored.validation_weeks == [week(i) for i in range(29, 34)]
    assert stored.trained_through < stored.validation_weeks[0]
    assert stored.train_weeks == TINY["max_train_windows"]
    assert stored.hyperparameters == get_forecaster("rate_cnn", **TINY).hyperparameters()
    assert stored.artifact_path.startswith(str(tmp_path / "models" / "rate_cnn"))
    assert stored.artifact_path.endswith("v0001.keras")
    # Nothing after week 33 was read: the planted 500s would dominate every error.
    assert stored.validation["mae"] < 2.0

    [decision] = decisions(db, "rate_cnn")
    assert set(decision["details"]["baselines"]) == set(BASELINES)
    best = min(decision["details"]["baselines"].values(), key=lambda s: s["poisson_deviance"])
    assert decision["baseline_score"] == pytest.approx(best["poisson_deviance"])
    assert decision["promoted"] == (decision["candidate_score"] < decision["baseline_score"])
    assert stored.promoted == decision["promoted"] == result.promoted
    production = production_version(db)
    assert (production.version if production else None) == (1 if result.promoted else None)


@pytest.mark.slow
def test_a_rerun_for_the_same_week_reuses_the_version(db):
    first = train(db, week(33), overrides=TINY)
    again = train(db, week(33), overrides=TINY)

    assert again.reused and again.version == first.version
    assert len(versions(db, "rate_cnn")) == 1 and len(decisions(db, "rate_cnn")) == 1


@pytest.mark.slow
def test_the_gate_refuses_a_worse_model_and_records_why(db):
    # Untrained, with eps = 50 the model forecasts the long-run rate + 50 in every cell.
    result = train(db, week(33), overrides={"epochs": 0, "rate_eps": 50.0})

    assert not result.promoted
    assert "does not beat" in result.decision_reason
    assert production_version(db) is None
    [decision] = decisions(db, "rate_cnn")
    assert not decision["promoted"]
    assert decision["candidate_score"] > decision["baseline_score"]
    assert decision["gate_weeks"] == get_version(db, "rate_cnn", 1).validation_weeks


@pytest.mark.slow
def test_after_a_refused_retrain_no_retrain_until_the_next_is_due(db):
    # Issue 13: a network the gate refused was retrained from scratch every week (every
    # backfilled week too). Now a retrain is attempted at most every 13 weeks.
    refused = {"epochs": 0, "rate_eps": 50.0}
    first = train(db, week(20), overrides=refused)
    assert first.mode == "retrain" and not first.promoted

    quiet = train(db, week(21), overrides=refused)
    assert (quiet.mode, quiet.version) == (SKIPPED, None)
    assert f"v{first.version}" in quiet.mode_reason and str(week(33)) in quiet.mode_reason
    assert train(db, week(32), overrides=refused).mode == SKIPPED
    assert len(versions(db, "rate_cnn")) == 1
    # due again 13 weeks later; asked for, at once; another design is another lineage
    assert train(db, week(33), overrides=refused).mode == "retrain"
    assert train(db, week(22), overrides=refused, mode="retrain").mode == "retrain"
    assert train(db, week(23), overrides={**refused, "rate_eps": 40.0}).mode == "retrain"
    assert len(versions(db, "rate_cnn")) == 4


def test_a_refused_scheduled_retrain_leaves_production_fine_tuning(tmp_path, monkeypatch):
    from crimejob.models import training

    production = version(tmp_path)  # promoted, retrained for 2024-01-01
    scheduled = date(2024, 1, 1) + timedelta(weeks=RETRAIN_EVERY_WEEKS)
    refused = version(tmp_path, version=2, promoted=False, data_through=scheduled,
                      last_retrain_week=scheduled)  # fmt: skip
    monkeypatch.setattr(training, "latest_retrain", lambda *args: refused)
    later = scheduled + timedelta(weeks=1)

    mode, why = _after_refused_retrain(None, "rate_cnn", "abc", later, production, "scheduled")
    assert mode == "finetune" and "rate_cnn v2" in why and "production v1" in why
    assert _after_refused_retrain(None, "rate_cnn", "abc", later, None, "none")[0] == SKIPPED
    monkeypatch.setattr(training, "latest_retrain", lambda *args: None)
    assert _after_refused_retrain(None, "rate_cnn", "abc", later, production, "x")[0] == "retrain"


@pytest.mark.slow
def test_the_production_backtest_retries_a_refused_retrain_on_the_schedule(monkeypatch):
    from crimejob.models import training
    from crimejob.models.policies import ProductionPolicy

    monkeypatch.setattr(training, "judge", lambda *args: ({}, {"promoted": False, "reason": "no"}))
    policy = ProductionPolicy(horizon=1, network="rate_cnn", overrides={**TINY, "epochs": 0})
    trained = {}
    for i in range(12, 27):
        out = policy._train(HISTORY.through(week(i)))
        trained[i] = "trained" in out
    assert [i for i, t in trained.items() if t] == [12, 12 + RETRAIN_EVERY_WEEKS]


@pytest.mark.slow
def test_fine_tuning_starts_from_the_production_weights(db):
    parent = train(db, week(30), overrides=TINY)
    promote(db, parent.version)
    parent_weights = load_forecaster(get_version(db, "rate_cnn", 1)).model.get_weights()
    fresh = get_forecaster("rate_cnn", epochs=0)
    fresh.fit(HISTORY.through(week(30)))

    child = train(db, week(31), overrides={**TINY, "finetune_epochs": 0})

    assert child.mode == "finetune" and child.parent_version == parent.version
    stored = get_version(db, "rate_cnn", child.version)
    assert stored.last_retrain_week == week(30) and stored.mode == "finetune"
    child_weights = load_forecaster(stored).model.get_weights()
    for a, b in zip(parent_weights, child_weights, strict=True):
        np.testing.assert_array_equal(a, b)
    # ... and those are trained weights, not what a fresh start would give.
    assert any(
        not np.array_equal(a, b)
        for a, b in zip(parent_weights, fresh.model.get_weights(), strict=True)
    )
    # The gate only counts weeks the production version never fitted to.
    [_, decision] = decisions(db, "rate_cnn")
    assert all(w > get_version(db, "rate_cnn", 1).trained_through for w in decision["gate_weeks"])
    assert decision["production_version"] == parent.version


def test_baselines_need_no_training_and_are_always_available(db):
    result = train(db, week(33), model_name="mean_13w")
    forecaster, version = production_forecaster(db, "mean_13w")

    assert result.version is None and "nothing to train" in result.format()
    assert version is None and forecaster.name == "mean_13w"
    with pytest.raises(DataError, match="no production version"):
        production_forecaster(db, "rate_cnn")


def test_training_needs_the_week_aggregated(db):
    with pytest.raises(DataError, match="no rows for"):
        train(db, week(39) + timedelta(weeks=5), overrides=TINY)


# --- the policies, without a database --------------------------------------------------


def version(tmp_path, **changes) -> ModelVersion:
    artifact = tmp_path / "v1.keras"
    artifact.write_bytes(b"weights")
    fields = {
        "model_name": "rate_cnn",
        "version": 1,
        "parent_version": None,
        "mode": "retrain",
        "design_hash": "abc",
        "data_through": date(2024, 1, 1),
        "trained_through": date(2023, 11, 27),
        "train_first_target": date(2022, 1, 3),
        "train_weeks": 80,
        "validation_weeks": [],
        "last_retrain_week": date(2024, 1, 1),
        "hyperparameters": {},
        "fit": {},
        "validation": {},
        "artifact_path": str(artifact),
        "promoted": True,
    }
    return ModelVersion(**{**fields, **changes})


def test_auto_mode_fine_tunes_weekly_and_retrains_when_the_policy_says_so(tmp_path):
    production = version(tmp_path)
    soon = date(2024, 1, 1) + timedelta(weeks=RETRAIN_EVERY_WEEKS - 1)
    due = date(2024, 1, 1) + timedelta(weeks=RETRAIN_EVERY_WEEKS)

    assert _choose_mode("auto", production, "abc", soon)[0] == "finetune"
    assert _choose_mode("auto", production, "abc", due)[0] == "retrain"
    assert _choose_mode("auto", None, "abc", soon) == ("retrain", "no production version")
    assert "design changed" in _choose_mode("auto", production, "xyz", soon)[1]
    gone = version(tmp_path, artifact_path=str(tmp_path / "missing.keras"))
    assert "missing" in _choose_mode("auto", gone, "abc", soon)[1]
    assert _choose_mode("retrain", production, "abc", soon)[0] == "retrain"
    with pytest.raises(DataError, match="cannot fine-tune: no production version"):
        _choose_mode("finetune", None, "abc", soon)


def test_the_gate_promotes_only_a_model_that_beats_production_and_the_best_baseline():
    baselines = {"mean_4w": {"poisson_deviance": 0.80}, "mean_52w": {"poisson_deviance": 0.70}}

    better = gate_decision({"poisson_deviance": 0.60}, {"poisson_deviance": 0.65}, baselines)
    worse_than_production = gate_decision(
        {"poisson_deviance": 0.68}, {"poisson_deviance": 0.65}, baselines
    )
    worse_than_baseline = gate_decision({"poisson_deviance": 0.75}, None, baselines)
    tie = gate_decision({"poisson_deviance": 0.70}, None, baselines)

    assert better["promoted"] and better["baseline_name"] == "mean_52w"
    assert better["reason"] == "poisson_deviance 0.6000 beats production 0.6500 and mean_52w 0.7000"
    assert not worse_than_production["promoted"]
    assert "production's 0.6500" in worse_than_production["reason"]
    assert (
        not worse_than_baseline["promoted"] and "mean_52w's 0.7000" in worse_than_baseline["reason"]
    )
    assert not tie["promoted"]


@pytest.mark.slow
def test_the_weekly_train_step_learns_the_runs_horizon_on_the_complete_weeks(db, monkeypatch):
    from crimejob.grid import gridstore
    from crimejob.grid.gridstore import load_history
    from crimejob.grid.lag import run_weeks
    from crimejob.job.modelstep import train_for_week
    from crimejob.serving.forecast_store import make_forecasts

    # The LA world's grids have no raw records to count as of the run: read them as stored.
    monkeypatch.setattr(
        gridstore, "history_for_run",
        lambda bind, w: load_history(bind, run_weeks(w).history_through),
    )  # fmt: skip
    monkeypatch.setenv("CRIMEJOB_HYPERPARAMETERS", json.dumps(TINY))
    # The run for week 35 with the default 14-day lag: weeks up to 33 are complete,
    # next week (36) is 3 weeks after them.
    out = train_for_week(db, week(35))
    assert (out["history_through"], out["horizon_weeks"]) == (str(week(33)), 3)
    stored = get_version(db, "rate_cnn", out["version"])
    assert stored.hyperparameters["horizon"] == 3
    assert stored.data_through == week(33)
    # each training target is 3 weeks after its input window; the newest is week 33
    assert stored.validation_weeks[-1] == week(33)
    assert stored.trained_through <= week(33) - timedelta(weeks=len(stored.validation_weeks))
    assert stored.validation["mae"] < 2.0  # the planted 500s of weeks 34+ were never read
    assert train_for_week(db, week(35))["skipped"] is True  # a rerun reuses it
    promote(db, out["version"])

    # The lag setting changes to 0 (horizon 1): the horizon-3 production is no rival and
    # the forecast step does not use it: the champion is chosen among the others.
    monkeypatch.setenv("CRIMEJOB_PUBLICATION_LAG_DAYS", "0")
    again = train_for_week(db, week(33))
    assert again["horizon_weeks"] == 1 and again["mode"] == "retrain"
    [*_, decision] = decisions(db, "rate_cnn")
    assert decision["production_version"] is None
    history = load_history(db, week(33))
    forecasts = make_forecasts(db, history, horizon=1)
    production = [f for f in forecasts if f.is_production]
    assert len(production) == 1
    if not again["promoted"]:
        assert production[0].model_name in BASELINES
        assert "rate_cnn" not in {f.model_name for f in forecasts}
    forecasts_3 = make_forecasts(db, history, horizon=3)
    assert len([f for f in forecasts_3 if f.is_production]) == 1
    if not again["promoted"]:  # production is still the horizon-3 version: it contends
        assert "rate_cnn" in {f.model_name for f in forecasts_3}
