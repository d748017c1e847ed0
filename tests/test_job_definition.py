"""The weekly job is defined once (crimejob.job.pipeline) and configured in one place
(crimejob.config.Settings): specifications that need no database."""

from __future__ import annotations

import ast
import re
from datetime import date
from pathlib import Path

import pytest

from crimejob.job.pipeline import STEPS_BY_NAME, WEEKLY_STEPS, RunOptions
from crimejob.job.results import (
    AggregateResult,
    CompletenessResult,
    ExtractResult,
    ForecastResult,
    LoadResult,
    ScoreResult,
    TrainResult,
)

ROOT = Path(__file__).resolve().parents[1]


def test_the_steps_run_in_the_order_of_the_pipeline_diagram():
    assert [step.name for step in WEEKLY_STEPS] == [
        "extract_crime", "extract_weather", "load", "aggregate", "check_completeness",
        "score", "train", "forecast",
    ]  # fmt: skip
    # each step needs only steps defined before it
    seen: set[str] = set()
    for step in WEEKLY_STEPS:
        assert set(step.after) <= seen, step.name
        seen.add(step.name)
    assert STEPS_BY_NAME["load"].after == ("extract_crime", "extract_weather")
    # the two extracts write files only: they run side by side without the week's lock
    assert [s.name for s in WEEKLY_STEPS if not s.writes_database] == [
        "extract_crime",
        "extract_weather",
    ]


@pytest.mark.parametrize(
    "options, allows",
    [
        (RunOptions(), False),
        (RunOptions(allow_incomplete=True), True),
        (RunOptions(backfill=True), True),  # past weeks: only a warning
        (RunOptions(backfill=True, offline=True), True),
    ],
)
def test_only_an_explicit_allowance_or_a_backfill_lets_an_incomplete_week_through(options, allows):
    assert options.allows_incomplete is allows


RESULTS = [
    ExtractResult(records=3, start=date(2024, 1, 1), end=date(2024, 1, 7), path="/x.json.gz"),
    ExtractResult(offline=True),
    LoadResult(
        window_start=date(2023, 11, 13),
        weeks_touched=[date(2023, 10, 2), date(2024, 1, 1)],
        crime={"loaded": 1, "updated": 0, "rejected": {"bad_date": 2}},
        weather={"loaded": 5, "updated": 0},
    ),
    AggregateResult(date(2023, 11, 13), date(2024, 1, 1), [date(2023, 10, 2)], ["report"]),
    CompletenessResult(
        week=date(2024, 1, 1),
        history_through=date(2023, 12, 18),
        incidents=812,
        trailing_median=800.0,
        ratio=1.015,
        incomplete_weeks={"2023-12-25": 0.6},
    ),  # fmt: skip
    ScoreResult(history_through=date(2023, 12, 18), note="nothing to score"),
    TrainResult(model_name="rate_cnn", version=3, promoted=True, headline="rate_cnn v3"),
    ForecastResult(
        target_week=date(2024, 1, 8),
        history_through=date(2023, 12, 18),
        horizon_weeks=3,
        rows=4500,
        production_model="mean_13w",
        production_version="baseline",
    ),  # fmt: skip
]


@pytest.mark.parametrize("result", RESULTS, ids=lambda r: type(r).__name__)
def test_a_step_result_reads_back_from_its_record_in_ops_runs(result):
    """An Airflow task reads the results of the steps before it from ops.runs.counts."""
    import json

    recorded = json.loads(json.dumps(result.as_dict()))  # what jsonb gives back
    assert type(result).from_dict(recorded) == result
    assert isinstance(result.summary(), str)


def test_the_train_step_reads_the_train_functions_dict():
    from_modelstep = {"model_name": "rate_cnn", "summary": "retrained", "skipped": True}
    result = TrainResult.from_dict(from_modelstep)
    assert (result.headline, result.skipped, result.summary()) == ("retrained", True, "retrained")


def test_lgbm_fits_on_published_weeks_in_the_train_and_forecast_steps_only(monkeypatch):
    """The weekly job's lgbm policy (gbm.fit_histories) covers the steps that forecast from
    the run's history, not the model card, whose feedback simulation has its own counts."""
    from crimejob.job import modelstep, steps
    from crimejob.models.forecasters import gbm
    from crimejob.serving import cards, forecast_store

    seen = {}

    def forecast_next_week(engine, week, run_id=None):
        seen["forecast"] = gbm._FIT_HISTORIES.get()
        return {"target_week": "2024-01-08", "history_through": "2023-12-18",
                "horizon_weeks": 3, "rows": 1, "production_model": "mean_all"}  # fmt: skip

    def card(engine, target_week):
        seen["card"] = gbm._FIT_HISTORIES.get()
        return {"card": "unchanged"}

    def train_for_week(engine, week, mode="auto"):
        seen["train"] = gbm._FIT_HISTORIES.get()
        return {"model_name": "rate_cnn", "summary": "skipped", "skipped": True}

    monkeypatch.setattr(forecast_store, "forecast_next_week", forecast_next_week)
    monkeypatch.setattr(cards, "refresh_production_card", card)
    monkeypatch.setattr(modelstep, "train_for_week", train_for_week)
    steps.forecast(None, date(2024, 1, 1))
    steps.train(None, date(2024, 1, 1))
    assert callable(seen["forecast"]) and callable(seen["train"])
    assert seen["card"] is None and gbm._FIT_HISTORIES.get() is None


# --- configuration in one place ------------------------------------------------------


def _environment_reads(path: Path) -> list[str]:
    """``os.environ.get("X")``, ``os.getenv("X")`` and ``os.environ["X"]`` read in ``path``."""
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        target, key = None, None
        if isinstance(node, ast.Call) and node.args:
            target, key = ast.unparse(node.func), node.args[0]
            if target not in ("os.environ.get", "os.getenv"):
                continue
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load):
            target, key = ast.unparse(node.value), node.slice
            if target != "os.environ":
                continue
        else:
            continue
        if isinstance(key, ast.Constant):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno} {key.value}")
    return found


def test_every_setting_is_read_through_settings_and_none_at_import():
    # the local test servers (devservers) set CRIMEJOB_SODA_URL for the job and put back
    # what was there: they configure the job, they do not read its configuration
    exempt = {ROOT / "crimejob" / "config.py", ROOT / "crimejob" / "devservers" / "soda.py"}
    sources = [*(ROOT / "crimejob").rglob("*.py"), *(ROOT / "dags").rglob("*.py")]
    reads = [read for path in sources if path not in exempt for read in _environment_reads(path)]
    assert reads == []


def test_every_setting_is_in_the_readme_configuration_table():
    config = (ROOT / "crimejob" / "config.py").read_text()
    names = set(re.findall(r'"(CRIMEJOB_[A-Z_]+)"', config))
    assert {"CRIMEJOB_HISTORY_WEEKS", "CRIMEJOB_MODEL", "CRIMEJOB_FORCE_CPU"} <= names
    readme = (ROOT / "README.md").read_text()
    table = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `(CRIMEJOB_[A-Z_]+)`", table, re.MULTILINE))
    assert names <= documented, sorted(names - documented)


def test_settings_are_read_when_asked_for(monkeypatch):
    from crimejob.config import get_settings

    monkeypatch.setenv("CRIMEJOB_HISTORY_WEEKS", "26")
    monkeypatch.setenv("CRIMEJOB_COMPLETENESS_RATIO", "0.25")
    monkeypatch.setenv("CRIMEJOB_MODEL", "mean_13w")
    monkeypatch.setenv("CRIMEJOB_FORCE_CPU", "1")
    monkeypatch.setenv("CRIMEJOB_VERBOSE", "1")
    settings = get_settings()
    assert (settings.history_weeks, settings.completeness_ratio) == (26, 0.25)
    assert (settings.model, settings.force_cpu, settings.verbose) == ("mean_13w", True, True)
    for name in ("CRIMEJOB_HISTORY_WEEKS", "CRIMEJOB_COMPLETENESS_RATIO", "CRIMEJOB_MODEL",
                 "CRIMEJOB_FORCE_CPU", "CRIMEJOB_VERBOSE"):  # fmt: skip
        monkeypatch.delenv(name)
    settings = get_settings()
    assert (settings.history_weeks, settings.completeness_ratio) == (104, 0.5)
    assert (settings.model, settings.force_cpu, settings.verbose) == (None, False, False)
