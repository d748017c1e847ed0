"""Help that teaches: every command's --help says what its dates mean, gives examples and
its exit codes; the backtest reports progress while it works; messages name the real
cause (offline: the records are missing from the database, not "not published")."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pytest

from crimejob import cli
from crimejob.cli_help import EXAMPLES, _subcommands


def _help(capsys, *command: str) -> str:
    with pytest.raises(SystemExit) as exit_:
        cli.main([*command, "--help"])
    assert exit_.value.code == 0
    return capsys.readouterr().out


def test_every_command_has_exit_codes_and_the_documented_ones_examples(capsys):
    commands = [name for name, _ in _subcommands(cli.build_parser())]
    assert {"run", "backfill", "backtest", "demo", "ingest crime", "db upgrade"} <= set(commands)
    for command in commands:
        text = _help(capsys, *command.split())
        assert "exit codes:\n  0  success" in text, command
        assert "  2  usage" in text, command
        if command in EXAMPLES:
            assert "examples:\n  crimejob" in text or "examples:\n  CRIMEJOB" in text, command
    assert "  3  the source looks broken" in _help(capsys, "run")
    assert "  3 " not in _help(capsys, "plot")  # only the run checks completeness


def test_week_start_and_end_are_explained(capsys):
    for command in ("run", "train", "score", "forecast", "map"):
        text = " ".join(_help(capsys, command).split())
        assert "named by any date in it" in text and "Los Angeles time" in text, command
    for command in ("backfill", "backtest", "aggregate"):
        text = " ".join(_help(capsys, command).split())
        assert "--start START the first week (any date in it" in text, command
        assert "--end END the last week, included" in text, command
    text = " ".join(_help(capsys, "ingest", "crime").split())
    assert "fetched by when they were reported, not when they occurred" in text


def test_the_backtest_reports_week_model_and_running_score_on_stderr(capsys):
    from crimejob.devworld import la_world
    from crimejob.models.backtest import run_backtest

    history = la_world(seed=2, start=date(2025, 6, 2), weeks=20).history()
    start = date(2025, 6, 2) + timedelta(weeks=17)
    result = run_backtest(history, start, start + timedelta(weeks=2), ["mean_4w"], progress=True)
    captured = capsys.readouterr()
    assert captured.out == ""  # stdout stays for the table
    lines = captured.err.strip().splitlines()
    assert len(lines) == 3
    assert lines[0].startswith(f"backtest mean_4w week {start} (1/3): poisson_deviance ")
    means = [np.mean([r["poisson_deviance"] for r in result.rows[: i + 1]]) for i in range(3)]
    assert f"(running mean {means[2]:.4f})" in lines[2]


def test_an_offline_run_without_records_says_so(clean_db, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("CRIMEJOB_DATA_DIR", str(tmp_path))
    code = cli.main(["run", "--week", "2026-11-16", "--offline"])
    err = capsys.readouterr().err
    assert code == 3
    assert "offline: no records for week 2026-11-02 in the database" in err
    assert "publish" not in err.split("(")[0]  # not "has not published it"
