"""``crimejob demo``: a first look without network, on the LA development world.

The development world (:mod:`crimejob.devworld`, generated from the committed
``params.json``, no real records needed) is published through the project's own
local servers (:mod:`crimejob.devservers`) the way the sources publish today:
NIBRS offenses from the portal's ``k7nn-b2ep`` with its 13-day publication lag
(and ``y8y3-fqfu`` closed), NCEI daily summaries. Then the real weekly job runs
against them, week after week, on the embedded PostgreSQL of a data directory of
its own: the first run loads the history and trains the model from scratch, the
next ones fine-tune, score the forecasts whose week has become complete and
forecast again. It ends with the map, the plot and three queries of the ``bi``
views, and says where to look.

The demo is small on purpose (``CRIMEJOB_HISTORY_WEEKS`` 26 and a short training
budget unless set): a look at the job, not a judgement of the model. Its data
directory is emptied first, so a rerun starts afresh; nothing else is touched
(``CRIMEJOB_DATABASE_URL`` is ignored: the demo never writes into a real database).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

from crimejob.config import get_settings
from crimejob.grid.lag import run_moment, run_weeks
from crimejob.grid.weeks import latest_complete_week, week_start

log = logging.getLogger(__name__)

DEFAULT_DIR = Path(".crimejob") / "demo"
DEFAULT_RUNS = 4  # the bootstrap, then three weekly runs: the first forecast gets scored
DEFAULT_HISTORY_WEEKS = 26
# A short training budget: the demo shows the job, benchmarks/ judges the model.
DEFAULT_BUDGET = {"epochs": 4, "max_train_windows": 16, "finetune_epochs": 1, "finetune_windows": 4}
# Measured on a 2-core CPU (the run-up: world, servers, database; the bootstrap run;
# each weekly run), for the estimate the demo prints before it starts.
SECONDS_SETUP, SECONDS_BOOTSTRAP, SECONDS_PER_WEEK = 25, 60, 25

# The three queries the demo runs at the end and prints for BI tools.
QUERIES = {
    "Next week's ten highest-risk cells (the production forecast)": (
        "SELECT target_week, cell_id, area_name, round(predicted::numeric, 2) AS predicted, "
        "rank, hotspot_1pct\nFROM bi.forecast_latest ORDER BY rank LIMIT 10;"
    ),
    "How each model scored on the weeks now complete (production beside the baselines)": (
        "SELECT target_week, model_name, model_version, round(mae::numeric, 3) AS mae,\n"
        "       round(pai_5pct::numeric, 2) AS pai_5pct, round(hit_rate_5pct::numeric, 3) "
        "AS hit_rate_5pct\nFROM bi.forecast_scores ORDER BY target_week, pai_5pct DESC;"
    ),
    "What each week's run did": (
        "SELECT week_start, aggregated, last_run_status, forecast_model, scored_at IS NOT NULL "
        "AS scored\nFROM bi.week_status ORDER BY week_start DESC LIMIT 8;"
    ),
}


@dataclass
class DemoResult:
    directory: Path
    weeks: list[date]
    target_week: date
    map_path: Path
    plot_path: Path
    scores_path: Path | None
    database_url: str
    seconds: float
    week_seconds: dict[str, float] = field(default_factory=dict)


def estimate_seconds(runs: int) -> int:
    return SECONDS_SETUP + SECONDS_BOOTSTRAP + SECONDS_PER_WEEK * max(runs - 1, 0)


@contextmanager
def _environment(values: dict[str, str | None]) -> Iterator[None]:
    """Set (or, for None, remove) environment variables; restore them afterwards."""
    previous = {key: os.environ.get(key) for key in values}
    for key, value in values.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    try:
        yield
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _fresh_database() -> str:
    """The embedded PostgreSQL of the demo's data directory, with an empty, migrated
    ``crimejob`` database (a rerun drops the previous demo's)."""
    from crimejob.db import _engine_for, drop_database, embedded_url, upgrade

    url = embedded_url()
    server = sa.engine.make_url(url).set(database="postgres")
    _engine_for.cache_clear()
    drop_database(server, "crimejob")
    url = embedded_url()
    engine = sa.create_engine(url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    return url


def _command(name: str) -> str:
    """How to call a console script of this installation (``.venv/bin/crimejob``)."""
    script = Path(sys.executable).with_name(name)
    if script.exists():
        try:
            return str(script.relative_to(Path.cwd()))
        except ValueError:
            return str(script)
    return f"{sys.executable} -m {name}"


def run_demo(
    directory: Path = DEFAULT_DIR,
    runs: int = DEFAULT_RUNS,
    last_week: date | None = None,
    seed: int = 0,
    share: float = 1.0,
    say: Callable[[str], None] = print,
) -> DemoResult:
    """Publish the development world locally and run the weekly job ``runs`` times, up to
    ``last_week`` (default: the latest complete week); then write the map and the plots.
    ``share`` < 1 publishes only that share of the incidents (a faster, sparser city)."""
    from crimejob.devservers.ncei import ncei_server
    from crimejob.devservers.soda import soda_server
    from crimejob.devservers.world_feed import (
        FIRST_NIBRS_ONLY_WEEK,
        NIBRS_DATASET,
        daily_summaries,
        nibrs_records,
    )
    from crimejob.devworld import la_world

    started = time.perf_counter()
    if runs < 1:
        raise ValueError("the demo needs at least one run")
    if not 0 < share <= 1:
        raise ValueError(f"the share of incidents must be in (0, 1], not {share}")
    directory = Path(directory).resolve()
    last_week = week_start(last_week or latest_complete_week())
    weeks = [last_week - timedelta(weeks=runs - 1 - i) for i in range(runs)]
    settings = get_settings()
    history_weeks = settings.history_weeks_setting or DEFAULT_HISTORY_WEEKS
    budget = settings.hyperparameters or json.dumps(DEFAULT_BUDGET)
    target_week = last_week + timedelta(weeks=1)

    # the bootstrap's report window starts history_weeks before the first run's history
    first_history = run_weeks(weeks[0], lag_days=14).history_through - timedelta(
        weeks=history_weeks - 1
    )
    world_start = first_history - timedelta(weeks=4)
    if world_start < FIRST_NIBRS_ONLY_WEEK:
        raise ValueError(
            f"the demo's weeks must start after {FIRST_NIBRS_ONLY_WEEK + timedelta(weeks=6)} "
            f"plus the history ({history_weeks} weeks); pick a later --last-week"
        )
    world_weeks = (target_week - world_start).days // 7 + 1

    minutes = estimate_seconds(runs) / 60
    say(
        f"crimejob demo: the LA development world, {runs} weekly runs ({weeks[0]} to "
        f"{last_week}) on {history_weeks} weeks of history, in {directory}.\n"
        f"It takes about {minutes:.0f} minutes on a quiet 2-core CPU, up to twice that on a "
        f"busy one (the first run loads the history and trains the model from scratch, each "
        f"later run about {SECONDS_PER_WEEK} s). No network is used."
    )
    # a fresh data directory: its embedded database is emptied below, the rest removed
    directory.mkdir(parents=True, exist_ok=True)
    for name in ("models", "extracts", "plots"):
        shutil.rmtree(directory / name, ignore_errors=True)

    world = la_world(seed=seed, start=world_start, weeks=world_weeks)
    records = nibrs_records(world, world_start, target_week, seed=seed)
    if share < 1:
        keep = np.random.default_rng([seed, 3]).random(len(records)) < share
        records = [r for r, k in zip(records, keep, strict=True) if k]
    weather = daily_summaries(world, world_start, target_week + timedelta(days=6), seed=seed)
    say(
        f"  the world: {len(records):,} NIBRS offense records occurring {world_start} to "
        f"{target_week + timedelta(days=6)}, {len(weather):,} station-days of weather"
    )

    settings: dict[str, str | None] = {
        "CRIMEJOB_DATA_DIR": str(directory),
        "CRIMEJOB_MODEL_DIR": str(directory / "models"),
        "CRIMEJOB_DATABASE_URL": None,  # never a real database: the demo's own embedded one
        "CRIMEJOB_HISTORY_WEEKS": str(history_weeks),
        "CRIMEJOB_HYPERPARAMETERS": budget,
        "CRIMEJOB_PUBLICATION_LAG_DAYS": None,  # the real lag, 14 days
        "CRIMEJOB_CRIME_DATASETS": None,
        "CRIMEJOB_STATIONS": None,
        "CRIMEJOB_HTTP_MAX_ATTEMPTS": "2",
        "CRIMEJOB_HTTP_BACKOFF_MAX": "0.1",
    }
    week_seconds: dict[str, float] = {}
    with (
        soda_server({NIBRS_DATASET: records, "2nrs-mtv8": []}, set_env=False) as soda,
        ncei_server(weather) as ncei,
    ):
        soda.app.closed["y8y3-fqfu"] = 403  # closed since October 2026, as the portal says
        settings.update({"CRIMEJOB_SODA_URL": soda.url, "CRIMEJOB_NCEI_URL": ncei.base_url})
        with _environment(settings):
            from crimejob.db import get_engine
            from crimejob.job.pipeline import run_week

            url = _fresh_database()
            say(f"  the database: a fresh embedded PostgreSQL under {directory / 'pgdata'}")
            say(f"  the portal: {soda.url} (k7nn-b2ep, 13-day lag); NCEI: {ncei.base_url}\n")
            engine = get_engine(url)
            for week in weeks:
                soda.app.now = run_moment(week)
                say(f"$ crimejob run --week {week}    # the portal's clock: {soda.app.now}")
                result = run_week(engine, week)
                week_seconds[str(week)] = round(result.total_seconds, 1)
                say(result.format() + "\n")
            out = directory / "plots"
            out.mkdir(parents=True, exist_ok=True)
            from crimejob.serving import maps, plot

            map_path = maps.week_map(engine, target_week, out / f"map_{target_week}.html")
            scored = _newest_scored_week(engine)
            plot_week = scored or target_week
            plot_path = plot.plot_week(engine, plot_week, out / f"forecast_{plot_week}.png")
            scores_path = plot.plot_scores(engine, out / "scores.png") if scored else None
            tables = {title: pd.read_sql(sa.text(sql), engine) for title, sql in QUERIES.items()}
            engine.dispose()

    result = DemoResult(
        directory=directory,
        weeks=weeks,
        target_week=target_week,
        map_path=map_path,
        plot_path=plot_path,
        scores_path=scores_path,
        database_url=url,
        seconds=time.perf_counter() - started,
        week_seconds=week_seconds,
    )
    say(_closing_note(result, plot_week, tables))
    return result


def _newest_scored_week(engine) -> date | None:
    with engine.connect() as conn:
        return conn.execute(
            sa.text("SELECT max(target_week) FROM ml.forecast_scores WHERE is_production")
        ).scalar()


def _closing_note(result: DemoResult, plot_week: date, tables: dict[str, pd.DataFrame]) -> str:
    crimejob = _command("crimejob")
    env = f"CRIMEJOB_DATA_DIR={result.directory}"
    psql_url = result.database_url.replace("postgresql+psycopg2://", "postgresql://")
    lines = [
        f"Done in {result.seconds:.0f} s. Where to look:",
        "",
        f"  the map of next week's forecast ({result.target_week}), open it in a browser:",
        f"    {result.map_path}",
        f"    made by: {env} {crimejob} map --week {result.target_week} --out map.html",
        f"  the plot of week {plot_week}: forecast, actual, error, and the capture curve:",
        f"    {result.plot_path}",
        f"    made by: {env} {crimejob} plot --week {plot_week} --out forecast.png"
        + (" --scores scores.png" if result.scores_path else ""),
    ]
    if result.scores_path:
        lines.append(f"  every model's weekly scores: {result.scores_path}")
    lines += [
        "",
        f"  the database (BI tools, psql): {psql_url}",
        "  three questions the bi views answer:",
    ]
    with pd.option_context("display.width", 120, "display.max_columns", 12):
        for title, frame in tables.items():
            sql = QUERIES[title]
            shown = frame.head(10).astype(object).where(frame.head(10).notna(), "")
            lines += ["", f"-- {title}", sql, _indent(shown.to_string(index=False))]
    lines += [
        "",
        "Other commands take the same CRIMEJOB_DATA_DIR, e.g. "
        f"`{env} {crimejob} card` prints the production model's card. "
        "The demo's PostgreSQL keeps running for them; to stop it: "
        f"{crimejob} demo --stop --dir {result.directory}",
    ]
    return "\n".join(lines)


def _indent(text: str) -> str:
    return "\n".join("   " + line for line in text.splitlines())
