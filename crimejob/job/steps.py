"""The weekly job's steps, one function each; :mod:`crimejob.job.pipeline` runs them in order.

Every step takes an engine and the ``week`` being run (a Monday; the run for W
starts after W ends), is idempotent, and returns its typed result
(:mod:`crimejob.job.results`). The run for W forecasts W+1 from the weeks complete
after the publication lag (``crimejob.grid.lag``). The order (``pipeline.WEEKLY_STEPS``,
which ``crimejob run``, ``crimejob backfill`` and the Airflow DAG all run):

    extract_crime ─┐
                   ├─ load ─ aggregate ─ check_completeness ─ score ─ train ─ forecast
    extract_weather┘

Extracts are written to files under the data directory, so that the fetch and
the database write are separate tasks (and a failed load can be retried without
hitting the sources again). A source that fails raises before anything is
written; the previous forecast stays as it was.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import logging
import os
import statistics
import tempfile
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from crimejob.config import get_settings
from crimejob.errors import CrimejobError
from crimejob.job.results import (
    AggregateResult,
    CompletenessResult,
    ExtractResult,
    ForecastResult,
    LoadResult,
    ScoreResult,
    TrainResult,
)

log = logging.getLogger(__name__)


class IncompleteWeekError(CrimejobError):
    """The source has clearly not published the week yet; training on it would mislead."""


def extract_window(engine: Engine, week: date) -> tuple[date, date]:
    """Report dates to (re)fetch for ``week``: the trailing window for late reports,
    reaching further back to the first missing week when history is missing (the
    bootstrap: ``CRIMEJOB_HISTORY_WEEKS`` weeks up to the newest complete week)."""
    from crimejob.grid.gridstore import aggregated_weeks
    from crimejob.grid.lag import run_weeks

    settings = get_settings()
    end = week + timedelta(days=6)
    start = week - timedelta(weeks=settings.trailing_weeks - 1)
    have = set(aggregated_weeks(engine))
    through = run_weeks(week).history_through
    wanted = [through - timedelta(weeks=i) for i in range(settings.history_weeks)]
    missing = [w for w in wanted if w not in have and w < start]
    if missing:
        start = min(missing)
    return start, end


def _extract_dir(week: date) -> Path:
    path = get_settings().data_dir / "extracts" / week.isoformat()
    path.mkdir(parents=True, exist_ok=True)
    return path


def _write_json_atomic(path: Path, payload) -> None:
    """Write to a temporary file of a unique name, then rename it into place: two runs
    writing the same extract at once each leave a whole file, never a mix."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(name)
    try:
        # one C-encoded string, fast compression: json.dump to a gzip stream encodes
        # piece by piece in Python and compresses at level 9 (2 s of a backfill week)
        with (
            os.fdopen(fd, "wb") as raw,
            gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1) as handle,
        ):
            handle.write(json.dumps(payload).encode("utf-8"))
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _read_json(path: str | Path):
    with gzip.open(path, "rb") as handle:
        return json.loads(handle.read())


# --- extract / load / aggregate -----------------------------------------------


def offline_loaded(engine: Engine, week: date) -> LoadResult:
    """What ``load`` hands on when the run is offline (``crimejob run --offline``, the DAG's
    ``offline`` param): nothing fetched, the window to re-aggregate from the records
    already in the database."""
    return LoadResult(window_start=extract_window(engine, week)[0], offline=True)


def extract_crime(engine: Engine, week: date) -> ExtractResult:
    """Fetch LAPD records reported in the window; verified complete, written to a file."""
    from crimejob.ingest.crime_ingest import fetch_crime_api

    start, end = extract_window(engine, week)
    fetched = fetch_crime_api(start, end)
    path = _extract_dir(week) / "crime.json.gz"
    _write_json_atomic(path, [[dataset, records] for dataset, records in fetched])
    records = sum(len(r) for _, r in fetched)
    log.info("extracted %d crime records reported %s..%s", records, start, end)
    return ExtractResult(records=records, start=start, end=end, path=str(path))


def extract_weather(engine: Engine, week: date) -> ExtractResult:
    """Fetch NCEI daily summaries for the same window; written to a file."""
    from crimejob.ingest.weather_ingest import fetch_weather_api

    start, end = extract_window(engine, week)
    records = fetch_weather_api(start, end)
    path = _extract_dir(week) / "weather.json.gz"
    _write_json_atomic(path, records)
    return ExtractResult(records=len(records), start=start, end=end, path=str(path))


def load(
    engine: Engine, week: date, crime_extract: ExtractResult, weather_extract: ExtractResult
) -> LoadResult:
    """Upsert the extracted records into ``raw`` (rejects kept with their reason)."""
    from crimejob.ingest.crime_ingest import load_crime_records
    from crimejob.ingest.weather_ingest import load_weather_records

    crime = load_crime_records(
        engine, [(dataset, records) for dataset, records in _read_json(crime_extract.path)]
    )
    weather = load_weather_records(engine, _read_json(weather_extract.path), source="ncei-api")
    return LoadResult(
        window_start=crime_extract.start,
        weeks_touched=sorted({*crime.weeks_touched, *weather.weeks_touched}),
        crime=crime.as_dict(),
        weather=weather.as_dict(),
    )


def aggregate(engine: Engine, week: date, loaded: LoadResult) -> AggregateResult:
    """Recompute the grid rows of every week the window touched, and of the window itself.

    Weeks older than the window are recomputed only when they already have
    grid rows (a late report changes them); a lone old week is never created,
    so the history stays consecutive.
    """
    from crimejob.grid import staleweeks
    from crimejob.grid.aggregate import aggregate_ranges
    from crimejob.grid.gridstore import aggregated_weeks
    from crimejob.grid.weeks import week_start

    window_start = week_start(loaded.window_start)
    have = set(aggregated_weeks(engine))
    # the weeks this load touched, and those an earlier, killed run loaded but never
    # aggregated (ops.stale_weeks)
    touched = set(loaded.weeks_touched)
    older = sorted(
        w for w in touched | staleweeks.pending(engine) if w < window_start and w in have
    )
    report = aggregate_ranges(engine, aggregation_ranges(older, window_start, week))
    return AggregateResult(
        first_week=window_start,
        last_week=week,
        older_weeks=older,
        reports=[report.format()],
    )


def aggregation_ranges(
    older: list[date], window_start: date, week: date
) -> list[tuple[date, date]]:
    """The week ranges to aggregate: the window, and the runs of consecutive older weeks
    that late reports touched (a run that reaches the window joins it). All of them are
    aggregated in one transaction (:func:`crimejob.grid.aggregate.aggregate_ranges`).

    Only touched weeks are recomputed. Before, touched weeks were joined into one range
    across the untouched weeks between them, which recomputed rows that could not have
    changed and, since that moves their ``aggregated_at``, rescored every forecast of
    those weeks: in a backfill, late reports reach back over the whole history, so each
    week rewrote most of the grid and rescored every week it had forecast. The older
    weeks all have grid rows (the caller's choice), so no week is created out of line.
    """
    step = timedelta(weeks=1)
    ranges: list[list[date]] = []
    for w in sorted(set(older)):
        if ranges and w == ranges[-1][1] + step:
            ranges[-1][1] = w
        else:
            ranges.append([w, w])
    window = [window_start, week]
    if ranges and ranges[-1][1] + step >= window_start:
        window[0] = min(window_start, ranges.pop()[0])
    return [tuple(window), *(tuple(r) for r in reversed(ranges))]


# --- completeness ----------------------------------------------------------------


_WEEK_TOTALS = sa.text(
    "SELECT week_start, incident_total FROM grid.weeks "
    "WHERE week_start BETWEEN :first AND :last ORDER BY week_start"
)
# The newest report the source had published by the run (raw.crime_records is indexed
# on reported_at, so this reads one index entry).
_NEWEST_REPORT = sa.text(
    "SELECT max(reported_at) FROM raw.crime_records WHERE reported_at < :before"
)
# How far behind the lag the newest published report may be before the feed counts as
# stalled: a week of report dates with nothing published at all.
STALL_DAYS = 7


def check_completeness(
    engine: Engine, week: date, allow_incomplete: bool = False, offline: bool = False
) -> CompletenessResult:
    """Stop the run when the source is clearly broken, not because of the publication lag.

    The lag is designed in (``crimejob.grid.lag``): the weeks after ``history_through``
    (W-1 and W with the default 14-day lag) are expected to be partial, and are
    only reported. Two things stop the run (exit code 3, nothing written):

    - the newest *complete* week, ``history_through``, has under
      ``CRIMEJOB_COMPLETENESS_RATIO`` (default 0.5) of the median of the 8 weeks
      before it: a week that should be whole is half missing;
    - nothing reported in the week before the lag cut-off has been published at all
      (the newest published report is over ``STALL_DAYS`` days older than the run
      moment minus the lag): the feed has stalled, or its lag grew well past
      ``CRIMEJOB_PUBLICATION_LAG_DAYS``.

    ``allow_incomplete`` (``--allow-incomplete``, and every backfill:
    ``pipeline.RunOptions.allows_incomplete``) turns both into a note.
    ``offline`` (nothing was fetched) words the problems as what they are then: records
    missing from the database, not a source that has not published them.
    """
    from crimejob.grid.lag import run_moment, run_weeks

    plan = run_weeks(week)
    through = plan.history_through
    ratio_floor = get_settings().completeness_ratio
    with engine.connect() as conn:
        rows = conn.execute(
            _WEEK_TOTALS, {"first": through - timedelta(weeks=8), "last": week}
        ).all()
        newest = conn.execute(_NEWEST_REPORT, {"before": run_moment(week)}).scalar()
    totals = {r.week_start: r.incident_total for r in rows}
    if through not in totals:
        raise IncompleteWeekError(
            f"week {through}, the newest week complete after the {plan.lag_days}-day "
            f"publication lag, has no grid rows: nothing was loaded for it"
        )
    previous = [totals[w] for w in sorted(totals) if w < through]
    result: dict = {
        "week": week,
        "history_through": through,
        "incidents": totals[through],
        "newest_report": str(newest) if newest else None,
        "complete": True,
    }
    problems = []
    missing_offline = offline and not totals[through]
    if missing_offline:
        problems.append(
            f"offline: no records for week {through} in the database (the newest week "
            f"complete after the {plan.lag_days}-day publication lag; the newest record "
            f"there was reported {newest or 'never'})"
        )
    elif len(previous) < 4:
        result["note"] = f"only {len(previous)} earlier weeks to compare with; not checked"
    else:
        median = statistics.median(previous)
        # A zero median is no yardstick: the source published nothing in those weeks.
        ratio = totals[through] / median if median else 0.0
        result.update({"trailing_median": median, "ratio": round(ratio, 3)})
        result["incomplete_weeks"] = {
            str(w): round(totals.get(w, 0) / median, 3) if median else None
            for w in plan.incomplete_weeks
        }
        if not median:
            problems.append(
                f"the 8 weeks before {through} have a median of 0 incidents: the source "
                "has published nothing for them"
            )
        elif ratio < ratio_floor and offline:
            problems.append(
                f"offline: week {through} has {totals[through]} incidents in the database, "
                f"{ratio:.0%} of the median {median:g} of the 8 weeks before: its records "
                f"are not all in the database"
            )
        elif ratio < ratio_floor:
            problems.append(
                f"week {through} has {totals[through]} incidents, {ratio:.0%} of the median "
                f"{median:g} of the 8 weeks before, although its reports should all be "
                f"published after the {plan.lag_days}-day lag: the source has not published it"
            )
    stalled_before = plan.published_before - timedelta(days=STALL_DAYS)
    if missing_offline:
        pass  # said above
    elif (newest is None or newest < stalled_before) and offline:
        problems.append(
            f"offline: the newest record in the database was reported {newest or 'never'}: "
            f"none reported on or after {stalled_before:%Y-%m-%d} is there, though the run "
            f"for {week} may use those reported before {plan.published_before:%Y-%m-%d}"
        )
    elif newest is None or newest < stalled_before:
        problems.append(
            f"the newest report published is {newest or 'none'}: nothing reported on or "
            f"after {stalled_before:%Y-%m-%d} has been published, though with the "
            f"{plan.lag_days}-day lag the reports taken before {plan.published_before:%Y-%m-%d} "
            f"should be (the feed stalled, or its lag grew: see CRIMEJOB_PUBLICATION_LAG_DAYS)"
        )
    if problems:
        result["complete"] = False
        advice = (
            "import the missing records (crimejob ingest crime --csv FILE), run without "
            "--offline, or pass --allow-incomplete"
            if offline
            else "rerun later, or pass --allow-incomplete"
        )
        message = "; ".join(problems) + f" ({advice})"
        if not allow_incomplete:
            raise IncompleteWeekError(message)
        result["note"] = "allowed: " + message
    return CompletenessResult(**result)


# --- score / train / forecast ---------------------------------------------------


def published_fits(engine: Engine) -> contextlib.AbstractContextManager[None]:
    """While the train and forecast steps forecast from the run's history, ``lgbm`` fits
    on its anchor's weeks as the run for the anchor saw them
    (:mod:`crimejob.models.forecasters.gbm`): refitted every 13 weeks, not every week a
    late report revises a fitted week. Not around the model card, whose feedback-loop
    simulation forecasts from simulated counts."""
    from crimejob.grid.gridstore import published_history
    from crimejob.models.forecasters.gbm import fit_histories

    read: dict[date, Any] = {}  # each anchor's weeks read once a step (lgbm only reads them)

    def source(through: date) -> Any:
        if through not in read:
            read[through] = published_history(engine, through)
        return read[through]

    return fit_histories(source)


def score(engine: Engine, week: date) -> ScoreResult:
    """Score the forecasts of every target week that is complete as of the run for
    ``week`` (up to its ``history_through``) and was not scored since its counts or its
    forecasts last changed: new weeks once, and again when late reports revise them."""
    from crimejob.grid.lag import run_weeks
    from crimejob.serving.scoring import score_complete_weeks

    return ScoreResult.from_dict(score_complete_weeks(engine, run_weeks(week).history_through))


def train(engine: Engine, week: date, mode: str = "auto") -> TrainResult:
    """Fine-tune or retrain the production model (GPU queue) on the history the run for
    ``week`` may see, at the run's horizon."""
    from crimejob.job.modelstep import train_for_week

    with published_fits(engine):
        return TrainResult.from_dict(train_for_week(engine, week, mode=mode))


def forecast(
    engine: Engine, week: date, run_id: int | None = None, card: bool = True
) -> ForecastResult:
    """Forecast next week (``week + 7 days``) for all cells with the production model and
    the baselines, from the newest complete week at the run's horizon. ``run_id`` (the
    run in ``ops.runs``) is written into every forecast row. ``card=False`` (``crimejob
    backfill``, which builds the card once at its end) leaves the model card alone."""
    from crimejob.serving.cards import refresh_production_card
    from crimejob.serving.forecast_store import forecast_next_week

    with published_fits(engine):
        result = forecast_next_week(engine, week, run_id=run_id)
    # a new production model (a promotion) gets its model card, stored with the version
    if card:
        result.update(refresh_production_card(engine, date.fromisoformat(result["target_week"])))
    else:
        result["card"] = "deferred to the end of the backfill"
    return ForecastResult.from_dict(result)
