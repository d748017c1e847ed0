"""What ``crimejob COMMAND --help`` teaches: what the dates mean, examples, exit codes.

Kept apart from the parser (``crimejob.cli``) so that the help reads as one text:
:func:`teach` walks the built parser and gives every command its examples and
exit codes, and every ``--week``/``--start``/``--end`` an explanation.
"""

from __future__ import annotations

import argparse
import textwrap

WEEK = (
    "a week, named by any date in it (YYYY-MM-DD): crimejob weeks run Monday 00:00 to "
    "Monday 00:00, Los Angeles time, so 2026-11-18 means the week of Monday 2026-11-16"
)
DATE_HELP = {
    "week": WEEK,
    "start": "the first week (any date in it, YYYY-MM-DD; weeks run Monday to Sunday, LA time)",
    "end": "the last week, included (any date in it, YYYY-MM-DD)",
}
MODE_HELP = (
    "auto (default): fine-tune the production model, retrain every 13 weeks or when the "
    "design changed; retrain or finetune force one"
)
# ingest works on report dates, not weeks
INGEST_DATE_HELP = {
    "start": "the first report date (YYYY-MM-DD): records are fetched by when they were "
    "reported, not when they occurred",
    "end": "the last report date, included (YYYY-MM-DD)",
}

EXIT_CODES = {
    0: "success",
    1: "a clear failure, one line on stderr: a source down after its retries, a dataset "
    "closed, a bad file, missing history",
    2: "usage: a bad option or date",
    3: "the source looks broken beyond its publication lag (the newest complete week half "
    "missing, or nothing published lately; --allow-incomplete goes on), or offline: the "
    "records are not in the database",
}
CODES_BY_COMMAND = {"run": (0, 1, 2, 3), "": (0, 1, 2, 3)}  # only the run checks completeness

EXAMPLES: dict[str, list[tuple[str, str]]] = {
    "db upgrade": [("crimejob db upgrade", "apply new migrations, re-create the bi views")],
    "ingest crime": [
        ("crimejob ingest crime --start 2026-11-01 --end 2026-11-07", "from the SODA API"),
        (
            "crimejob ingest crime --csv Crime_Data_from_2020_to_Present.csv",
            "a portal CSV export, bulk COPY",
        ),
    ],
    "ingest weather": [
        ("crimejob ingest weather --start 2026-11-01 --end 2026-11-07", "NCEI daily summaries"),
        ("crimejob ingest weather --csv ncei_daily_summaries.csv", "an NCEI CSV"),
    ],
    "aggregate": [
        (
            "crimejob aggregate --start 2026-01-05 --end 2026-11-16",
            "recompute the grid rows of these weeks (4,500 a week)",
        ),
    ],
    "train": [
        (
            "crimejob train --week 2026-11-02",
            "as that week's run: weeks complete after the lag (to 10-19), 3 weeks ahead",
        ),
        ("crimejob train --week 2026-11-02 --mode retrain --model seed_cnn", "from scratch"),
    ],
    "backtest": [
        (
            "crimejob backtest --start 2026-06-01 --end 2026-11-02 --models rate_cnn,lgbm,mean_52w",
            "progress on stderr, the table on stdout",
        ),
        (
            "crimejob backtest --start 2026-06-01 --end 2026-11-02 --models ewma --json bt.json",
            "also per-week rows as JSON",
        ),
        (
            "crimejob backtest --policy production --start 2026-06-01 --end 2026-11-02",
            "replay production (training, gate, champion) beside every baseline",
        ),
    ],
    "score": [("crimejob score --week 2026-11-16", "score the weeks complete by that run")],
    "forecast": [("crimejob forecast --week 2026-11-16", "forecast the week of 2026-11-23")],
    "run": [
        ("crimejob run", "the latest week that has ended"),
        ("crimejob run --week 2026-11-16", "the run for that week: forecasts 2026-11-23"),
        ("crimejob run --week 2026-11-16 --offline", "no fetching: the records already loaded"),
    ],
    "backfill": [
        (
            "crimejob backfill --start 2026-01-05 --end 2026-11-16",
            "each week in order, resumable, progress bar",
        ),
        ("crimejob backfill --start 2026-01-05 --end 2026-11-16 --offline", "after a CSV import"),
    ],
    "plot": [
        ("crimejob plot --week 2026-11-23 --out week.png", "forecast, actual, error maps"),
        ("crimejob plot --scores scores.png", "every model's weekly scores"),
    ],
    "map": [("crimejob map --week 2026-11-23 --out week.html", "open it in a browser")],
    "demo": [
        ("crimejob demo", "4 weekly runs up to last week, in .crimejob/demo"),
        ("crimejob demo --runs 2 --dir /tmp/demo", "quicker: the bootstrap and one weekly run"),
        (
            "CRIMEJOB_DATA_DIR=.crimejob/demo crimejob map --week 2026-11-23 --out map.html",
            "then any command on the demo's database",
        ),
        ("crimejob demo --stop", "stop the demo's PostgreSQL"),
    ],
    "card": [
        ("crimejob card", "print the production model's card"),
        ("crimejob card --out card.md --store", "write it and store it with the version"),
    ],
}


def epilog(command: str) -> str:
    lines = []
    examples = EXAMPLES.get(command)
    if examples:
        width = max(len(cmd) for cmd, _ in examples)
        lines.append("examples:")
        for cmd, what in examples:
            if width <= 60:
                lines.append(f"  {cmd:<{width}}  # {what}")
            else:  # long commands: the comment on the next line
                lines.append(f"  {cmd}\n      # {what}")
        lines.append("")
    lines.append("exit codes:")
    for code in CODES_BY_COMMAND.get(command, (0, 1, 2)):
        lines.append(
            textwrap.fill(
                EXIT_CODES[code], 88, initial_indent=f"  {code}  ", subsequent_indent="     "
            )
        )
    return "\n".join(lines)


def _subcommands(parser: argparse.ArgumentParser, prefix: str = ""):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                full = f"{prefix} {name}".strip()
                nested = list(_subcommands(sub, full))
                yield from nested or [(full, sub)]


def teach(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Give every leaf command its epilog and every date option its meaning."""
    parser.epilog = epilog("")  # the top level: the exit codes
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    for command, sub in _subcommands(parser):
        if sub.epilog is None:  # a command may bring its own
            sub.epilog = epilog(command)
        sub.formatter_class = argparse.RawDescriptionHelpFormatter
        if sub.description is None:
            sub.description = _help_of(parser, command)
        if sub.description and "\n" not in sub.description:
            sub.description = textwrap.fill(sub.description, 88)
        ingest = command.startswith("ingest")
        helps = INGEST_DATE_HELP if ingest else DATE_HELP
        for action in sub._actions:
            if action.dest in helps and (ingest or not action.help):
                action.help = helps[action.dest]
            elif action.dest in helps and "any date" not in action.help:
                action.help = f"{action.help}; {helps[action.dest]}"
            elif action.dest == "mode" and not action.help:
                action.help = MODE_HELP
    return parser


def _help_of(parser: argparse.ArgumentParser, command: str) -> str | None:
    """The one-line help the parent gave ``command``, as its description."""
    *parents, name = command.split()
    current = parser
    for part in parents:
        current = next(
            a.choices[part] for a in current._actions if isinstance(a, argparse._SubParsersAction)
        )
    for action in current._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                if choice.dest == name and choice.help:
                    return choice.help[0].upper() + choice.help[1:] + "."
    return None
