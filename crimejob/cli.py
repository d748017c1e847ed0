"""The ``crimejob`` command line: the same step functions the Airflow tasks call.

Each handler parses dates, gets the engine and calls one function of the
``crimejob`` package; no business logic lives here. Exit codes: 0 success,
1 failure (a source failed, bad input), 2 usage, 3 the source looks broken beyond
the publication lag (see ``crimejob run --allow-incomplete``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from datetime import date
from pathlib import Path

from crimejob.grid.weeks import parse_week

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INCOMPLETE = 3
OFFLINE_HELP = "skip extract/load: use the records already in the database (e.g. a CSV import)"


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from exc


def _week(text: str) -> date:
    return parse_week(_date(text))


def _engine():
    from crimejob.db import get_engine

    return get_engine()


# --- handlers -----------------------------------------------------------------


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from crimejob.db import database_url, upgrade, view_files

    applied = upgrade(_engine())
    url = database_url()
    print(
        f"database {url.split('@')[-1]}: applied {len(applied)} migration(s), "
        f"re-created the views of {len(view_files())} file(s) in sql/views"
    )
    for name in applied:
        print(f"  {name}")
    return 0


def cmd_ingest_crime(args: argparse.Namespace) -> int:
    from crimejob.ingest import crime_ingest

    engine = _engine()
    if args.csv:
        report = crime_ingest.ingest_crime_csv(engine, Path(args.csv), source=args.dataset)
    else:
        if not (args.start and args.end):
            raise SystemExit("crimejob ingest crime: give --start and --end, or --csv FILE")
        datasets = args.dataset.split(",") if args.dataset else None
        report = crime_ingest.ingest_crime_api(engine, args.start, args.end, datasets=datasets)
    print(report.format())
    return 0


def cmd_ingest_weather(args: argparse.Namespace) -> int:
    from crimejob.ingest import weather_ingest

    engine = _engine()
    if args.csv:
        report = weather_ingest.ingest_weather_csv(engine, Path(args.csv))
    else:
        if not (args.start and args.end):
            raise SystemExit("crimejob ingest weather: give --start and --end, or --csv FILE")
        report = weather_ingest.ingest_weather_api(engine, args.start, args.end)
    print(report.format())
    return 0


def cmd_aggregate(args: argparse.Namespace) -> int:
    from crimejob.grid.aggregate import aggregate_weeks

    report = aggregate_weeks(_engine(), args.start, args.end)
    print(report.format())
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from crimejob.grid.lag import run_weeks
    from crimejob.job.modelstep import train_for_week

    plan = run_weeks(args.week)
    print(
        f"the run for {plan.week}: history through {plan.history_through}, "
        f"forecasting {plan.horizon} week(s) ahead"
    )
    out = train_for_week(_engine(), args.week, mode=args.mode, model_name=args.model)
    print(out["text"])
    return 0


def cmd_backtest(args: argparse.Namespace) -> int:
    from crimejob.grid.lag import run_weeks
    from crimejob.models.backtest import run_backtest_from_db
    from crimejob.models.forecasters import BASELINES
    from crimejob.models.policies import PRODUCTION

    models = [m.strip() for m in (args.models or "").split(",") if m.strip()]
    if args.policy == PRODUCTION:
        # the production policy beside every baseline (or the models named)
        models = [PRODUCTION, *[m for m in models or BASELINES if m != PRODUCTION]]
    if not models:
        raise SystemExit("crimejob backtest: give --models a,b and/or --policy production")
    # Production forecasts at the run's horizon (the publication lag); research: 1 by default.
    horizon = args.horizon or (run_weeks(args.end).horizon if PRODUCTION in models else 1)
    result = run_backtest_from_db(
        _engine(), args.start, args.end, models, horizon=horizon, progress=True
    )
    print(result.format_table())
    if PRODUCTION in models:
        print()
        print(result.format_policy())
    if args.json:
        Path(args.json).write_text(json.dumps(result.to_json(), indent=2))
        print(f"wrote {args.json}")
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from crimejob.job import steps

    print(json.dumps(steps.score(_engine(), args.week).as_dict(), indent=2))
    return 0


def cmd_forecast(args: argparse.Namespace) -> int:
    from crimejob.job import steps

    print(json.dumps(steps.forecast(_engine(), args.week).as_dict(), indent=2))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from crimejob.grid.weeks import latest_complete_week
    from crimejob.job.pipeline import IncompleteWeekError, run_week

    week = args.week or latest_complete_week()
    try:
        result = run_week(
            _engine(),
            week,
            allow_incomplete=args.allow_incomplete,
            mode=args.mode,
            offline=args.offline,
        )
    except IncompleteWeekError as exc:
        print(f"crimejob run: {exc}", file=sys.stderr)
        return EXIT_INCOMPLETE
    print(result.format())
    return 0


def cmd_backfill(args: argparse.Namespace) -> int:
    from crimejob.job.pipeline import backfill

    result = backfill(
        _engine(),
        args.start,
        args.end,
        force=args.force,
        progress=True,
        offline=args.offline,
        mode=args.mode,
    )
    print(result.format())
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from crimejob.serving import plot

    engine = _engine()
    if args.scores:
        plot.plot_scores(engine, Path(args.scores))
        print(f"wrote {args.scores}")
    if args.divisions:
        from crimejob.serving.division_plot import plot_divisions

        plot_divisions(engine, Path(args.divisions))
        print(f"wrote {args.divisions}")
    if args.week:
        out = Path(args.out or f"forecast_{args.week}.png")
        plot.plot_week(engine, args.week, out)
        print(f"wrote {out}")
    if not (args.week or args.scores or args.divisions):
        raise SystemExit(
            "crimejob plot: give --week DATE --out FILE.png, --scores FILE.png "
            "and/or --divisions FILE.png"
        )
    return 0


def cmd_map(args: argparse.Namespace) -> int:
    from crimejob.serving.maps import week_map

    out = Path(args.out or f"forecast_{args.week}.html")
    week_map(_engine(), args.week, out)
    print(f"wrote {out}")
    return 0


def cmd_card(args: argparse.Namespace) -> int:
    from crimejob.serving.cards import write_card

    card = write_card(_engine(), out=Path(args.out) if args.out else None, store=args.store)
    if args.out:
        print(f"wrote {args.out} ({card.model_name} {card.model_version})")
    else:
        print(card.text)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from crimejob import demo

    directory = Path(args.dir)
    if args.stop:
        from crimejob.db import stop_embedded

        stopped = stop_embedded(directory)
        state = "stopped" if stopped else "no server running for"
        print(f"{state} the demo's PostgreSQL in {directory / 'pgdata'}")
        return 0
    try:
        demo.run_demo(directory, runs=args.runs, last_week=args.last_week, share=args.share)
    except ValueError as exc:
        print(f"crimejob demo: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return 0


# --- parser -------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="crimejob", description=__doc__.splitlines()[0])
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log at INFO, TensorFlow's start-up too"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    db = sub.add_parser("db", help="database schema").add_subparsers(dest="db_cmd", required=True)
    db.add_parser("upgrade", help="apply migrations in sql/").set_defaults(func=cmd_db_upgrade)

    ingest = sub.add_parser("ingest", help="fetch or import source records").add_subparsers(
        dest="source", required=True
    )
    crime = ingest.add_parser("crime", help="LAPD incidents (SODA API or portal CSV export)")
    crime.add_argument("--start", type=_date, help="first report date (API)")
    crime.add_argument("--end", type=_date, help="last report date, inclusive (API)")
    crime.add_argument("--csv", help="a portal CSV export to bulk-import")
    crime.add_argument("--dataset", help="SODA dataset id(s), default: by report date")
    crime.set_defaults(func=cmd_ingest_crime)
    weather = ingest.add_parser("weather", help="NCEI daily summaries and holidays")
    weather.add_argument("--start", type=_date)
    weather.add_argument("--end", type=_date)
    weather.add_argument("--csv", help="an NCEI daily-summaries CSV to import")
    weather.set_defaults(func=cmd_ingest_weather)

    agg = sub.add_parser("aggregate", help="recompute weekly grid rows")
    agg.add_argument("--start", type=_date, required=True)
    agg.add_argument("--end", type=_date, required=True)
    agg.set_defaults(func=cmd_aggregate)

    train = sub.add_parser(
        "train",
        help="train or fine-tune a model as the weekly run for --week does: on the weeks "
        "complete after the publication lag, at the run's horizon",
    )
    train.add_argument("--week", type=_week, required=True, help="the run's week")
    train.add_argument("--model", default=None, help="model name (default: the production one)")
    train.add_argument("--mode", choices=["retrain", "finetune", "auto"], default="auto")
    train.set_defaults(func=cmd_train)

    backtest = sub.add_parser("backtest", help="rolling-origin backtest of several models")
    backtest.add_argument("--start", type=_week, required=True)
    backtest.add_argument("--end", type=_week, required=True)
    backtest.add_argument(
        "--models",
        help="comma-separated model names, e.g. rate_cnn,lgbm,kde_mean,mean_52w",
    )
    backtest.add_argument(
        "--policy",
        choices=["production"],
        help="also replay the weekly job's policy (retrain schedule, fine-tunes, gate, "
        "champion decision) as the model 'production', beside every baseline",
    )
    backtest.add_argument(
        "--horizon",
        type=int,
        help="weeks ahead (default: the run's horizon with --policy, else 1)",
    )
    backtest.add_argument("--json", help="also write per-week rows and means as JSON")
    backtest.set_defaults(func=cmd_backtest)

    for name, func, helptext in (
        (
            "score",
            cmd_score,
            "score the forecasts of the weeks complete as of the run for --week (and rescore "
            "those late reports changed)",
        ),
        (
            "forecast",
            cmd_forecast,
            "forecast the week after --week for all cells, from the weeks complete as of its run",
        ),
    ):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--week", type=_week, required=True)
        p.set_defaults(func=func)

    run = sub.add_parser("run", help="the weekly job for one week, end to end")
    run.add_argument("--week", type=_week, help="default: the latest complete week")
    run.add_argument(
        "--allow-incomplete",
        action="store_true",
        help="go on when the source looks broken (the newest complete week half missing, "
        "or nothing published lately)",
    )
    run.add_argument("--mode", choices=["retrain", "finetune", "auto"], default="auto")
    run.add_argument("--offline", action="store_true", help=OFFLINE_HELP)
    run.set_defaults(func=cmd_run)

    backfill = sub.add_parser("backfill", help="the weekly job for each week in a range")
    backfill.add_argument("--start", type=_week, required=True)
    backfill.add_argument("--end", type=_week, required=True)
    backfill.add_argument("--force", action="store_true", help="rerun weeks already complete")
    backfill.add_argument("--mode", choices=["retrain", "finetune", "auto"], default="auto")
    backfill.add_argument("--offline", action="store_true", help=OFFLINE_HELP)
    backfill.set_defaults(func=cmd_backfill)

    plot = sub.add_parser("plot", help="maps of a week's forecast, or the scoreboard")
    plot.add_argument("--week", type=_week)
    plot.add_argument("--out")
    plot.add_argument("--scores", help="write weekly MAE and PAI against baselines")
    plot.add_argument(
        "--divisions",
        help="write weekly violent incidents per LAPD division and citywide, actual and "
        "forecast with 90%% intervals, holiday weeks marked",
    )
    plot.set_defaults(func=cmd_plot)

    fmap = sub.add_parser("map", help="an interactive HTML map of a week's production forecast")
    fmap.add_argument("--week", type=_week, required=True, help="the target week")
    fmap.add_argument("--out", help="the HTML file (default forecast_WEEK.html)")
    fmap.set_defaults(func=cmd_map)

    card = sub.add_parser("card", help="the model card of the production model (Markdown)")
    card.add_argument("--out", help="write it to this file (default: print it)")
    card.add_argument(
        "--store", action="store_true", help="also store it with the version (ml.model_cards)"
    )
    card.set_defaults(func=cmd_card)

    from crimejob.demo import DEFAULT_DIR, DEFAULT_RUNS

    dm = sub.add_parser(
        "demo",
        help="a first look without network: the weekly job on a simulated Los Angeles",
        description="Serve the LA development world (simulated from committed parameters) "
        "through local SODA and NCEI servers in today's formats, and run the real weekly job "
        "against them on an embedded PostgreSQL of its own: the first run loads the history "
        "and trains, the next ones score and forecast. Ends with the map, the plot and three "
        "SQL queries of the bi views. A few minutes; no network; nothing outside --dir is "
        "touched (CRIMEJOB_DATABASE_URL is ignored).",
    )
    dm.add_argument(
        "--dir",
        default=str(DEFAULT_DIR),
        help=f"the demo's data directory, emptied first (default {DEFAULT_DIR})",
    )
    dm.add_argument(
        "--runs",
        type=int,
        default=DEFAULT_RUNS,
        help=f"weekly runs, the first one the bootstrap (default {DEFAULT_RUNS}: "
        "the first forecast gets scored)",
    )
    dm.add_argument(
        "--last-week",
        type=_week,
        help="the last week run (any date in it; default: the latest complete week)",
    )
    dm.add_argument(
        "--share",
        type=float,
        default=1.0,
        help="publish only this share of the incidents: faster, sparser (default 1)",
    )
    dm.add_argument(
        "--stop",
        action="store_true",
        help="stop the demo's PostgreSQL (left running for crimejob map, plot, ...)",
    )
    dm.set_defaults(func=cmd_demo)

    from crimejob.cli_help import teach

    return teach(parser)  # examples, exit codes and what the dates mean, for every command


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.verbose:  # TensorFlow's start-up messages too (crimejob.quiet)
        os.environ["CRIMEJOB_VERBOSE"] = "1"
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        from crimejob.errors import check_range

        check_range(getattr(args, "start", None), getattr(args, "end", None))
        return args.func(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a clear message, not a traceback, for expected failures
        import sqlalchemy as sa

        from crimejob.errors import CrimejobError, UsageError

        if isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError):
            from crimejob.db import get_engine, unreachable

            exc = unreachable(exc, get_engine())
        if isinstance(exc, CrimejobError):
            print(f"crimejob {args.command}: {exc}", file=sys.stderr)
            return EXIT_USAGE if isinstance(exc, UsageError) else EXIT_FAILED
        raise


if __name__ == "__main__":
    sys.exit(main())
