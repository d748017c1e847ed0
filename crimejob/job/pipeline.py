"""The weekly job end to end, and backfills: the steps of :mod:`crimejob.job.steps` in order.

``run_week`` is what ``crimejob run`` and the README's main command do; the
Airflow DAG runs the same steps as separate tasks. Each run is recorded in
``ops.runs`` with its step timings, counts and outcome.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field
from datetime import date, timedelta

from sqlalchemy.engine import Engine

from crimejob.errors import check_range
from crimejob.grid.gridstore import run_histories
from crimejob.grid.weeks import require_ended, week_start, weeks_between
from crimejob.job import steps
from crimejob.job.steps import IncompleteWeekError
from crimejob.runs import completed_weeks, finish_run, start_run, week_lock

__all__ = ["IncompleteWeekError", "RunResult", "BackfillResult", "run_week", "backfill"]

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    week: date
    run_id: int
    status: str
    steps: dict = field(default_factory=dict)
    step_seconds: dict = field(default_factory=dict)

    @property
    def total_seconds(self) -> float:
        return sum(self.step_seconds.values())

    def format(self) -> str:
        lines = [
            f"week {self.week} (run {self.run_id}): {self.status} in {self.total_seconds:.1f}s"
        ]
        for name, seconds in self.step_seconds.items():
            lines.append(f"  {name:<18} {seconds:7.2f}s  {_summary(name, self.steps.get(name))}")
        return "\n".join(lines)


def _summary(name: str, out: dict | None) -> str:
    if not out:
        return ""
    if name.startswith("extract"):
        return f"{out['records']} records reported {out['start']}..{out['end']}"
    if name == "load":
        crime, weather = out["crime"], out["weather"]
        return (
            f"crime +{crime['loaded']} ~{crime['updated']} rejected "
            f"{sum(crime['rejected'].values())}; weather +{weather['loaded']} ~{weather['updated']}"
        )
    if name == "aggregate":
        return f"weeks {out['weeks'][0]}..{out['weeks'][1]} (+{len(out['older_weeks'])} older)"
    if name == "check_completeness":
        text = f"complete through {out['history_through']}: {out['incidents']} incidents"
        if out.get("ratio") is not None:
            text += f" ({out['ratio']:.0%} of the trailing median)"
        partial = out.get("incomplete_weeks") or {}
        if partial:
            text += "; still publishing " + ", ".join(
                f"{w} ({share:.0%})" for w, share in partial.items() if share is not None
            )
        return text + (f"; {out['note']}" if out.get("note") else "")
    if name == "score":
        prod = out.get("production")
        if prod:
            weeks = out.get("scored_weeks") or [out.get("week")]
            return (
                f"week(s) {', '.join(weeks)}: {len(out['scored_models'])} models; production "
                f"{prod['model_name']} MAE {prod['mae']:.3f} PAI5 {prod['pai_5pct']:.2f}"
            )
        return out.get("note", f"{len(out['scored_models'])} models")
    if name == "train":
        return out.get("summary", "")
    if name == "forecast":
        return (
            f"{out['target_week']}: {out['rows']} rows from history through "
            f"{out['history_through']} (horizon {out['horizon_weeks']} weeks), production "
            f"{out['production_model']} "
            + (
                f"v{out['production_version']}"
                if str(out["production_version"]).isdigit()
                else f"({out['production_version']})"
            )
        )
    return ""


def run_week(
    engine: Engine,
    week: date,
    allow_incomplete: bool = False,
    mode: str = "auto",
    offline: bool = False,
    card: bool = True,
) -> RunResult:
    """Run every step for ``week``. ``offline`` skips extract/load and uses the data
    already in the database (after a bulk CSV import, for instance). A week that has
    not ended is refused before anything is written. ``card=False`` leaves the model
    card to the caller (a backfill builds the cards once, at its end)."""
    week = require_ended(week_start(week))
    run_id = start_run(
        engine,
        "weekly",
        week,
        {"mode": mode, "allow_incomplete": allow_incomplete, "offline": offline},
    )
    result = RunResult(week, run_id, "running")

    def step(name: str, func, *args, **kwargs):
        started = time.perf_counter()
        out = func(*args, **kwargs)
        result.step_seconds[name] = round(time.perf_counter() - started, 3)
        result.steps[name] = out
        log.info("week %s: %s done in %.1fs", week, name, result.step_seconds[name])
        return out

    try:
        with week_lock(engine, week), run_histories():
            _steps(engine, week, step, allow_incomplete, mode, offline, run_id, card)
    except IncompleteWeekError as exc:
        result.status = "incomplete"
        finish_run(engine, run_id, "incomplete", _counts(result), result.step_seconds, str(exc))
        raise
    except Exception as exc:
        result.status = "failed"
        finish_run(
            engine,
            run_id,
            "failed",
            _counts(result),
            result.step_seconds,
            f"{type(exc).__name__}: {exc}",
        )
        raise
    result.status = "succeeded"
    finish_run(engine, run_id, "succeeded", _counts(result), result.step_seconds)
    return result


def _steps(
    engine: Engine,
    week: date,
    step,
    allow_incomplete: bool,
    mode: str,
    offline: bool,
    run_id: int,
    card: bool = True,
) -> None:
    """The steps of one run, in order (``run_week`` holds the week's lock around them)."""
    if offline:
        loaded = steps.offline_loaded(engine, week)
    else:
        crime = step("extract_crime", steps.extract_crime, engine, week)
        weather = step("extract_weather", steps.extract_weather, engine, week)
        loaded = step("load", steps.load, engine, week, crime, weather)
    step("aggregate", steps.aggregate, engine, week, loaded)
    step(
        "check_completeness",
        steps.check_completeness,
        engine,
        week,
        allow_incomplete,
        offline=offline,
    )
    step("score", steps.score, engine, week)
    step("train", steps.train, engine, week, mode)
    step("forecast", steps.forecast, engine, week, run_id=run_id, card=card)


def _counts(result: RunResult) -> dict:
    return {name: out for name, out in result.steps.items()}


@dataclass
class BackfillResult:
    ran: list[date] = field(default_factory=list)
    skipped: list[date] = field(default_factory=list)
    seconds: float = 0.0
    cards: dict = field(default_factory=dict)

    def format(self) -> str:
        rate = len(self.ran) / (self.seconds / 60) if self.seconds and self.ran else 0.0
        return (
            f"backfill: ran {len(self.ran)} week(s), skipped {len(self.skipped)} already "
            f"complete, {self.seconds:.1f}s ({rate:.1f} weeks/min)"
        )


def backfill(
    engine: Engine,
    start: date,
    end: date,
    force: bool = False,
    progress: bool = False,
    offline: bool = False,
    mode: str = "auto",
) -> BackfillResult:
    """The weekly run for each week from ``start`` to ``end``, oldest first.

    Resumable: weeks whose run succeeded (and whose forecast is in place) are
    skipped unless ``force``. Each run replays what was published when it would
    have run (records reported before the run moment minus the publication lag,
    ``crimejob.grid.lag``), so later reports never leak into earlier forecasts. Past
    weeks are complete by definition, so the completeness check only warns.

    The network trains as the weekly job does (:func:`crimejob.models.training.train`: a
    fine-tune a week, a retrain every ``RETRAIN_EVERY_WEEKS`` weeks, and no retrain
    sooner after one the gate refused), so each week's rows are those the weekly runs
    would have written. A model card describes the model and the database when it is
    built, not a week: the production model's card is built once, at the end, if
    production changed hands in the backfilled weeks or it has none
    (:func:`crimejob.serving.cards.refresh_backfill_cards`).
    """
    from tqdm import tqdm

    from crimejob.serving.cards import refresh_backfill_cards

    check_range(start, end, "backfill")
    require_ended(end)
    weeks = weeks_between(start, end)
    done = set() if force else completed_weeks(engine)
    result = BackfillResult()
    started = time.perf_counter()
    bar = tqdm(weeks, unit="week", disable=not progress, desc="backfill")
    for week in bar:
        bar.set_postfix_str(str(week))
        if week in done:
            result.skipped.append(week)
            continue
        try:
            run_week(engine, week, allow_incomplete=True, mode=mode, offline=offline, card=False)
        except BaseException:
            if result.ran:  # the weeks done keep their card; the failure is what to report
                with contextlib.suppress(Exception):
                    refresh_backfill_cards(engine, [w + timedelta(weeks=1) for w in result.ran])
            raise
        result.ran.append(week)
    bar.close()
    if result.ran:
        result.cards = refresh_backfill_cards(engine, [w + timedelta(weeks=1) for w in result.ran])
    result.seconds = time.perf_counter() - started
    return result
