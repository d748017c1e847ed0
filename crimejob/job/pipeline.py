"""The weekly job, defined once: its steps in order, and the wrapper that records each.

:data:`WEEKLY_STEPS` is the job. ``crimejob run`` runs it in one process
(:func:`run_week`), ``crimejob backfill`` week after week (:func:`backfill`), and the
Airflow DAG one task per step (:func:`run_airflow_step`); each step goes through
:func:`run_step`, which records it in ``ops.runs``: its seconds and its result under
its name, the run's status, and the run id, which the step writes into its rows
(the forecasts' ``run_id``). So a week Airflow ran is a run like any other: ``bi.runs``
shows it and ``crimejob backfill`` skips it.

A step reads the results of the steps before it from the run (:class:`WeekRun`):
from memory in one process, from ``ops.runs.counts`` in an Airflow task.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from sqlalchemy.engine import Engine

from crimejob.errors import check_range
from crimejob.grid.gridstore import run_histories
from crimejob.grid.weeks import require_ended, week_start, weeks_between
from crimejob.job import steps
from crimejob.job.results import (
    AggregateResult,
    CompletenessResult,
    ExtractResult,
    ForecastResult,
    LoadResult,
    ScoreResult,
    StepResult,
    TrainResult,
)
from crimejob.job.steps import IncompleteWeekError
from crimejob.runs import (
    airflow_run,
    completed_weeks,
    finish_run,
    record_step,
    run_counts,
    start_run,
    week_lock,
)

__all__ = [
    "IncompleteWeekError",
    "RunOptions",
    "WeekRun",
    "Step",
    "WEEKLY_STEPS",
    "RunResult",
    "BackfillResult",
    "run_step",
    "run_week",
    "run_airflow_step",
    "backfill",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOptions:
    """How a weekly run runs: ``crimejob run``'s options, the DAG's params."""

    allow_incomplete: bool = False
    mode: str = "auto"  # training: auto, retrain or finetune
    offline: bool = False  # fetch nothing: the records already in the database
    backfill: bool = False  # a past week replayed (crimejob backfill, an Airflow backfill)

    @property
    def allows_incomplete(self) -> bool:
        """Whether the completeness check only warns. A backfill's weeks are past, complete
        by definition, so a backfill never stops on one, whoever runs it."""
        return self.allow_incomplete or self.backfill

    def as_params(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "allow_incomplete": self.allow_incomplete,
            "offline": self.offline,
            "backfill": self.backfill,
        }


@dataclass
class WeekRun:
    """One run of the weekly job: its week, its ``ops.runs`` row, its steps' results."""

    engine: Engine
    week: date
    run_id: int
    options: RunOptions = field(default_factory=RunOptions)
    results: dict[str, StepResult] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    card: bool = True  # False: the forecast leaves the model card (crimejob backfill's end)


@dataclass(frozen=True)
class Step:
    name: str
    run: Callable[[WeekRun], StepResult]
    result: type[StepResult]  # what it returns, read back from ops.runs.counts
    after: tuple[str, ...] = ()  # the steps it needs done first
    writes_database: bool = True  # holds the week's lock (the extracts only write files)


def _extract_crime(run: WeekRun) -> ExtractResult:
    if run.options.offline:
        return ExtractResult(offline=True)
    return steps.extract_crime(run.engine, run.week)


def _extract_weather(run: WeekRun) -> ExtractResult:
    if run.options.offline:
        return ExtractResult(offline=True)
    return steps.extract_weather(run.engine, run.week)


def _load(run: WeekRun) -> LoadResult:
    if run.options.offline:
        return steps.offline_loaded(run.engine, run.week)
    crime, weather = run.results["extract_crime"], run.results["extract_weather"]
    return steps.load(run.engine, run.week, crime, weather)


def _aggregate(run: WeekRun) -> AggregateResult:
    return steps.aggregate(run.engine, run.week, run.results["load"])


def _check_completeness(run: WeekRun) -> CompletenessResult:
    return steps.check_completeness(
        run.engine,
        run.week,
        allow_incomplete=run.options.allows_incomplete,
        offline=run.options.offline,
    )


def _score(run: WeekRun) -> ScoreResult:
    return steps.score(run.engine, run.week)


def _train(run: WeekRun) -> TrainResult:
    return steps.train(run.engine, run.week, mode=run.options.mode)


def _forecast(run: WeekRun) -> ForecastResult:
    return steps.forecast(run.engine, run.week, run_id=run.run_id, card=run.card)


# The weekly job. In a diagram (the DAG draws the same):
#
#     extract_crime ─┐
#                    ├─ load ─ aggregate ─ check_completeness ─ score ─ train ─ forecast
#     extract_weather┘
WEEKLY_STEPS: tuple[Step, ...] = (
    Step("extract_crime", _extract_crime, ExtractResult, writes_database=False),
    Step("extract_weather", _extract_weather, ExtractResult, writes_database=False),
    Step("load", _load, LoadResult, after=("extract_crime", "extract_weather")),
    Step("aggregate", _aggregate, AggregateResult, after=("load",)),
    Step("check_completeness", _check_completeness, CompletenessResult, after=("aggregate",)),
    Step("score", _score, ScoreResult, after=("check_completeness",)),
    Step("train", _train, TrainResult, after=("score",)),
    Step("forecast", _forecast, ForecastResult, after=("train",)),
)
STEPS_BY_NAME = {step.name: step for step in WEEKLY_STEPS}


def run_step(run: WeekRun, step: Step) -> StepResult:
    """Run one step of ``run`` and record it in ``ops.runs``: its seconds and result, or
    the run's end (``incomplete`` or ``failed``, with the message) when it raises. The
    last step's success ends the run ``succeeded``."""
    started = time.perf_counter()
    try:
        result = step.run(run)
    except BaseException as exc:  # a timeout or a kill by Airflow ends the run too
        seconds = round(time.perf_counter() - started, 3)
        incomplete = isinstance(exc, IncompleteWeekError)
        finish_run(
            run.engine,
            run.run_id,
            "incomplete" if incomplete else "failed",
            step_seconds={step.name: seconds},
            message=(str(exc) if incomplete else f"{type(exc).__name__}: {exc}")[:2000],
        )
        raise
    seconds = round(time.perf_counter() - started, 3)
    run.results[step.name], run.seconds[step.name] = result, seconds
    record_step(run.engine, run.run_id, step.name, seconds, result.as_dict())
    log.info("week %s: %s done in %.1fs", run.week, step.name, seconds)
    if step is WEEKLY_STEPS[-1]:
        finish_run(run.engine, run.run_id, "succeeded")
    return result


@dataclass
class RunResult:
    week: date
    run_id: int
    status: str
    steps: dict[str, StepResult] = field(default_factory=dict)
    step_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def total_seconds(self) -> float:
        return sum(self.step_seconds.values())

    def format(self) -> str:
        lines = [
            f"week {self.week} (run {self.run_id}): {self.status} in {self.total_seconds:.1f}s"
        ]
        for name, seconds in self.step_seconds.items():
            out = self.steps.get(name)
            lines.append(f"  {name:<18} {seconds:7.2f}s  {out.summary() if out else ''}")
        return "\n".join(lines)


def run_week(
    engine: Engine,
    week: date,
    allow_incomplete: bool = False,
    mode: str = "auto",
    offline: bool = False,
    backfill: bool = False,
    card: bool = True,
) -> RunResult:
    """Run every step for ``week`` in this process, holding the week's lock. ``offline``
    fetches nothing and uses the data already in the database (after a bulk CSV import,
    for instance). A week that has not ended is refused before anything is written.
    ``card=False`` leaves the model card to the caller (``crimejob backfill`` builds it
    once, at its end)."""
    week = require_ended(week_start(week))
    options = RunOptions(allow_incomplete, mode, offline, backfill)
    run = WeekRun(engine, week, start_run(engine, "weekly", week, options.as_params()), options)
    run.card = card
    with week_lock(engine, week), run_histories():
        for step in WEEKLY_STEPS:
            run_step(run, step)
    return RunResult(week, run.run_id, "succeeded", run.results, run.seconds)


def run_airflow_step(
    engine: Engine, week: date, options: RunOptions, airflow_run_id: str, name: str
) -> StepResult:
    """Run step ``name`` as one task of the Airflow run ``airflow_run_id``: the run's row in
    ``ops.runs`` is found (or made by its first task), the results of the steps before
    are read back from it, and the step is recorded there like any other."""
    week = week_start(week)
    step = STEPS_BY_NAME[name]
    run_id = airflow_run(engine, airflow_run_id, week, options.as_params())
    recorded = run_counts(engine, run_id)
    results = {
        earlier: STEPS_BY_NAME[earlier].result.from_dict(recorded[earlier])
        for earlier in step.after
    }
    run = WeekRun(engine, week, run_id, options, results)
    with ExitStack() as stack:
        if step.writes_database:
            stack.enter_context(week_lock(engine, week))
        stack.enter_context(run_histories())
        return run_step(run, step)


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

    Resumable: weeks whose run succeeded (and whose forecast is in place), by this
    command or by Airflow, are skipped unless ``force``. Each run replays what was
    published when it would have run (records reported before the run moment minus
    the publication lag, ``crimejob.grid.lag``), so later reports never leak into
    earlier forecasts. Past weeks are complete by definition, so the completeness check
    only warns (:attr:`RunOptions.allows_incomplete`).

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
            run_week(engine, week, mode=mode, offline=offline, backfill=True, card=False)
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
