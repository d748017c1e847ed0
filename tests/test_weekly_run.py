"""The weekly job end to end: real PostgreSQL, local SODA and NCEI servers speaking the
real protocols, the real model trained on CPU. After consecutive weekly runs every
target week has 4,500 forecast rows, every scored week has errors and scores, reruns
change nothing, an outage leaves the last forecast alone, a half-published week
stops the run, and a backfill runs weeks in order without seeing later reports."""

from __future__ import annotations

import json
import os
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from crimejob import cli
from crimejob.errors import SourceError
from crimejob.job.pipeline import backfill, run_week
from crimejob.job.steps import IncompleteWeekError
from tests.fakes.ncei import ncei_server
from tests.fakes.server import Fault
from tests.fakes.soda import LEGACY_ID, make_legacy_records, soda_server

FIRST = date(2023, 3, 6)  # the first week the job runs for (a Monday)
HISTORY_WEEKS = 26
PER_WEEK = 400  # legacy records reported per week


def _records(first_report: date, weeks: int, seed: int, per_week: int = PER_WEEK) -> list[dict]:
    return make_legacy_records(
        per_week * weeks,
        first_report,
        first_report + timedelta(weeks=weeks) - timedelta(days=1),
        seed=seed,
    )


@pytest.fixture
def job_env(monkeypatch, tmp_path, clean_db):
    """A small, fast configuration of the real job."""
    monkeypatch.setenv("CRIMEJOB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CRIMEJOB_MODEL_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("CRIMEJOB_HISTORY_WEEKS", str(HISTORY_WEEKS))
    monkeypatch.setenv("CRIMEJOB_TRAILING_WEEKS", "4")
    monkeypatch.setenv("CRIMEJOB_HTTP_MAX_ATTEMPTS", "3")
    monkeypatch.setenv("CRIMEJOB_HTTP_BACKOFF_MAX", "0.05")
    monkeypatch.setenv("CRIMEJOB_HYPERPARAMETERS", json.dumps({"epochs": 2, "finetune_epochs": 1}))
    # These sources publish every record at once: no publication lag, so the run for W
    # forecasts W+1 from W (horizon 1) and scores W. tests/test_live_portal.py runs the
    # job against a portal with LAPD's two-week lag (the default setting).
    monkeypatch.setenv("CRIMEJOB_PUBLICATION_LAG_DAYS", "0")
    return clean_db


@pytest.fixture
def sources(job_env):
    """SODA and NCEI servers holding a year of reports up to four weeks after FIRST."""
    first_report = FIRST - timedelta(weeks=HISTORY_WEEKS + 4)
    records = _records(first_report, HISTORY_WEEKS + 8, seed=1)
    with (
        soda_server({LEGACY_ID: records}) as soda,
        ncei_server(start=first_report, end=FIRST + timedelta(weeks=4)) as ncei,
    ):
        os.environ["CRIMEJOB_NCEI_URL"] = ncei.base_url
        try:
            yield soda, ncei
        finally:
            os.environ.pop("CRIMEJOB_NCEI_URL", None)


def job_env_paths(engine) -> tuple[Path, Path]:
    out = Path(os.environ["CRIMEJOB_DATA_DIR"]) / "plots"
    return out / "week.png", out / "scores.png"


def _table(engine, sql: str) -> pd.DataFrame:
    return pd.read_sql(sql, engine)


def _forecast_state(engine) -> pd.DataFrame:
    return _table(
        engine,
        "SELECT target_week, model_name, model_version, cell_id, predicted, rank, is_production "
        "FROM ml.forecasts ORDER BY target_week, model_name, cell_id",
    )


@pytest.mark.slow
def test_consecutive_weeks_leave_forecasts_errors_and_scores(sources, job_env):
    engine = job_env
    week2 = FIRST + timedelta(weeks=1)
    first = run_week(engine, FIRST)
    assert first.status == "succeeded"
    assert first.steps["score"].scored_models == []  # nothing forecast this week yet
    second = run_week(engine, week2)
    assert second.status == "succeeded"

    per_week = _table(
        engine,
        "SELECT target_week, count(*) AS n FROM bi.forecasts WHERE is_production "
        "GROUP BY target_week ORDER BY target_week",
    )
    assert per_week.to_dict("list") == {
        "target_week": [week2, week2 + timedelta(weeks=1)],
        "n": [4500, 4500],
    }
    latest = _table(engine, "SELECT * FROM bi.forecast_latest")
    assert len(latest) == 4500
    # rank 1 = highest; tied cells share a rank: 1 + the cells forecast strictly higher
    higher = latest["predicted"].to_numpy()[None, :] > latest["predicted"].to_numpy()[:, None]
    assert (latest["rank"].to_numpy() == 1 + higher.sum(axis=1)).all()
    assert not latest.loc[latest["predicted"] == 0, "hotspot_5pct"].any()
    assert latest["predicted_low"].notna().all() and latest["prob_any"].between(0, 1).all()
    # production got its model card, stored with it, when it was first published
    production = (latest["model_name"][0], latest["model_version"][0])
    cards = _table(engine, "SELECT model_name, model_version, path FROM bi.model_cards")
    assert production in set(zip(cards["model_name"], cards["model_version"], strict=True))
    assert all(Path(path).is_file() for path in cards["path"])

    # week 2 was forecast by week 1's run and is now scored, for every model
    errors = pd.read_sql(
        sa.text(
            "SELECT model_name, count(*) AS n, sum(actual) AS actual FROM bi.forecast_errors "
            "WHERE target_week = :w GROUP BY model_name"
        ),
        engine,
        params={"w": week2},
    )
    actual_total = pd.read_sql(
        sa.text("SELECT sum(violent_count) AS s FROM grid.weekly WHERE week_start = :w"),
        engine,
        params={"w": week2},
    )["s"].iloc[0]
    assert (errors["n"] == 4500).all()
    assert (errors["actual"] == actual_total).all()
    scores = pd.read_sql(
        sa.text("SELECT * FROM bi.forecast_scores WHERE target_week = :w"),
        engine,
        params={"w": week2},
    )
    assert set(scores["model_name"]) >= {"last_week", "mean_4w", "mean_13w", "ewma"}
    assert scores["is_production"].sum() == 1
    assert (scores["actual_total"] == actual_total).all()
    assert scores[["mae", "rmse", "poisson_deviance", "pai_5pct"]].notna().all().all()

    runs = _table(
        engine,
        "SELECT week_start, status, step_seconds FROM ops.runs "
        "WHERE kind = 'weekly' ORDER BY run_id",
    )
    assert runs["status"].tolist() == ["succeeded", "succeeded"]
    assert set(runs["step_seconds"].iloc[1]) == {
        "extract_crime",
        "extract_weather",
        "load",
        "aggregate",
        "check_completeness",
        "score",
        "train",
        "forecast",
    }

    # the maps and the scoreboard a person looks at
    maps, board = job_env_paths(engine)
    assert cli.main(["plot", "--week", str(week2), "--out", str(maps), "--scores", str(board)]) == 0
    for png in (maps, board):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000

    # a rerun of the same week changes nothing
    before = (
        _forecast_state(engine),
        _table(engine, "SELECT count(*) AS n FROM ml.model_versions"),
    )
    errors_before = _table(engine, "SELECT * FROM ml.forecast_errors ORDER BY 1, 2, 3")
    again = run_week(engine, week2)
    assert again.steps["train"].skipped is True
    after = (_forecast_state(engine), _table(engine, "SELECT count(*) AS n FROM ml.model_versions"))
    pd.testing.assert_frame_equal(before[0], after[0])
    pd.testing.assert_frame_equal(before[1], after[1])
    errors_after = _table(engine, "SELECT * FROM ml.forecast_errors ORDER BY 1, 2, 3")
    pd.testing.assert_frame_equal(
        errors_before.drop(columns="scored_at"), errors_after.drop(columns="scored_at")
    )

    # a source outage fails the run loudly and leaves the last forecast in place
    soda, _ = sources
    soda.add_faults("/resource/", *[Fault(status=500)] * 20)
    with pytest.raises(SourceError):
        run_week(engine, week2 + timedelta(weeks=1))
    pd.testing.assert_frame_equal(_forecast_state(engine), after[0])
    last = _table(engine, "SELECT status, message FROM ops.runs ORDER BY run_id DESC LIMIT 1")
    assert last["status"].iloc[0] == "failed"
    assert "SourceError" in last["message"].iloc[0]


def test_a_half_published_week_stops_the_run_with_its_own_exit_code(job_env, capsys):
    first_report = FIRST - timedelta(weeks=12)
    records = _records(first_report, 12, seed=2)
    # the week being run has a fifth of the usual reports: not published yet
    records += make_legacy_records(PER_WEEK // 5, FIRST, FIRST + timedelta(days=6), seed=3)
    for i, record in enumerate(records):
        record["dr_no"] = f"{230000000 + i}"
    with (
        soda_server({LEGACY_ID: records}),
        ncei_server(start=first_report, end=FIRST + timedelta(days=6)) as ncei,
    ):
        os.environ["CRIMEJOB_NCEI_URL"] = ncei.base_url
        try:
            with pytest.raises(IncompleteWeekError, match="not published"):
                run_week(job_env, FIRST)
            code = cli.main(["run", "--week", str(FIRST)])
        finally:
            os.environ.pop("CRIMEJOB_NCEI_URL", None)
    assert code == cli.EXIT_INCOMPLETE
    assert "not published" in capsys.readouterr().err
    statuses = _table(job_env, "SELECT status FROM ops.runs WHERE kind = 'weekly'")
    assert statuses["status"].tolist() == ["incomplete", "incomplete"]
    assert _table(job_env, "SELECT count(*) AS n FROM ml.forecasts")["n"].iloc[0] == 0


@pytest.mark.slow
def test_backfill_runs_weeks_in_order_resumes_and_never_sees_later_reports(sources, job_env):
    engine = job_env
    end = FIRST + timedelta(weeks=2)
    result = backfill(engine, FIRST, end)
    assert result.ran == [FIRST, FIRST + timedelta(weeks=1), end]
    targets = _table(engine, "SELECT DISTINCT target_week FROM ml.forecasts ORDER BY 1")
    assert targets["target_week"].tolist() == [FIRST + timedelta(weeks=i) for i in (1, 2, 3)]

    # the runs leave the model card to the end, which builds production's once
    final = pd.read_sql(
        sa.text(
            "SELECT DISTINCT model_name, model_version FROM ml.forecasts "
            "WHERE is_production AND target_week = :t"
        ),
        engine,
        params={"t": end + timedelta(weeks=1)},
    )
    cards = _table(engine, "SELECT model_name, model_version FROM bi.model_cards")
    assert set(zip(cards["model_name"], cards["model_version"], strict=True)) == {
        tuple(final.iloc[0])
    }
    assert result.cards["card"].endswith(".card.md")

    resumed = backfill(engine, FIRST, end)
    assert resumed.ran == [] and len(resumed.skipped) == 3

    # The database now holds reports made after FIRST ended (loaded by the later weeks).
    # Forecasting FIRST again must give the same baseline forecast as the original run.
    baseline = (
        "SELECT cell_id, predicted FROM ml.forecasts "
        "WHERE target_week = :t AND model_name = 'mean_4w' ORDER BY cell_id"
    )
    target = {"t": FIRST + timedelta(weeks=1)}
    original = pd.read_sql(sa.text(baseline), engine, params=target)
    late = pd.read_sql(
        sa.text(
            "SELECT count(*) AS n FROM raw.crime_records "
            "WHERE week_start <= :w AND reported_at >= :cut"
        ),
        engine,
        params={"w": FIRST, "cut": FIRST + timedelta(weeks=1)},
    )["n"].iloc[0]
    assert late > 0, "the fixture must contain late reports for the leakage check to mean anything"
    run_week(engine, FIRST, offline=True)
    rerun = pd.read_sql(sa.text(baseline), engine, params=target)
    pd.testing.assert_frame_equal(original, rerun)


@pytest.mark.slow
def test_a_week_run_task_by_task_as_airflow_runs_it_is_one_run_that_backfill_skips(
    sources, job_env, monkeypatch
):
    """The DAG's tasks each run one step in a process of their own: nothing passes between
    them but the run's row in ops.runs. The week is then a run like any other."""
    from crimejob.job.pipeline import WEEKLY_STEPS, RunOptions, run_airflow_step

    monkeypatch.setenv("CRIMEJOB_MODEL", "mean_13w")  # the steps, not the training, matter here
    engine = job_env
    airflow_run = "crimejob_weekly/manual__2023-03-14"
    for step in WEEKLY_STEPS:
        run_airflow_step(engine, FIRST, RunOptions(), airflow_run, step.name)
    run_airflow_step(engine, FIRST, RunOptions(), airflow_run, "forecast")  # a retried task

    runs = _table(
        engine,
        "SELECT run_id, week_start, status, params, counts, step_seconds FROM ops.runs "
        "WHERE kind = 'weekly'",
    )
    assert len(runs) == 1
    run = runs.iloc[0]
    assert (run["week_start"], run["status"]) == (FIRST, "succeeded")
    assert run["params"]["airflow_run_id"] == airflow_run
    assert set(run["step_seconds"]) == {step.name for step in WEEKLY_STEPS}
    assert run["counts"]["forecast"]["target_week"] == str(FIRST + timedelta(weeks=1))
    forecasts = _table(engine, "SELECT DISTINCT run_id FROM ml.forecasts")
    assert forecasts["run_id"].tolist() == [run["run_id"]]
    assert backfill(engine, FIRST, FIRST).skipped == [FIRST]
