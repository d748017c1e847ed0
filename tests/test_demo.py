"""The newcomer's path: `crimejob demo` in a fresh data directory, with no network, ends
with next week's forecast for all 4,500 cells in the `bi` views, the map and the plot,
and says where to look. The development world is served through the package's own
local SODA and NCEI servers (crimejob.devservers), so this needs nothing from outside."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa

from crimejob.db import stop_embedded
from crimejob.devservers.world_feed import nibrs_records
from crimejob.devworld import la_world
from crimejob.ingest.sources.lapd import map_api_records
from tests.conftest import TEST_ROOT

REPO = Path(__file__).resolve().parents[1]
LAST_WEEK = date(2026, 11, 16)


@pytest.mark.slow
def test_demo_in_a_fresh_directory_leaves_a_forecast_a_map_and_a_plot(tmp_path):
    # The demo's PostgreSQL runs as another user when we are root (pgserver), which must
    # traverse the path to it; any pytest starting on this machine makes its
    # /tmp/pytest-of-<user> private again, so the directory lives beside the test server.
    TEST_ROOT.mkdir(parents=True, exist_ok=True)
    directory = Path(tempfile.mkdtemp(prefix="demo-", dir=TEST_ROOT)) / "demo"
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("CRIMEJOB_") or key == "CRIMEJOB_TEST_DATA_DIR"
    }
    env.update(
        {
            "PYTHONPATH": str(REPO),
            "TF_NUM_INTRAOP_THREADS": "1",
            "TF_NUM_INTEROP_THREADS": "1",
            # a database URL in the environment must not be written to
            "CRIMEJOB_DATABASE_URL": "postgresql://nobody@127.0.0.1:9/not_this_one",
            # the fastest honest configuration: a short history and training budget
            "CRIMEJOB_HISTORY_WEEKS": "16",
            "CRIMEJOB_CARD_FEEDBACK_WEEKS": os.environ["CRIMEJOB_CARD_FEEDBACK_WEEKS"],
            "CRIMEJOB_HYPERPARAMETERS": json.dumps(
                {"epochs": 1, "max_train_windows": 3, "finetune_epochs": 1, "finetune_windows": 2}
            ),
        }
    )
    command = [sys.executable, "-m", "crimejob", "demo", "--dir", str(directory)]
    command += ["--runs", "2", "--share", "0.25", "--last-week", str(LAST_WEEK)]
    try:
        done = subprocess.run(
            command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        out = done.stdout
        assert re.search(r"It takes about \d+ minutes", out.splitlines()[1])  # said up front
        for noise in ("cuInit", "cuda drivers", "oneDNN", "absl::InitializeLog"):
            assert noise not in done.stderr  # TensorFlow's start-up noise stays out

        url = re.search(r"the database \(BI tools, psql\): (\S+)", out).group(1)
        engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg2://", 1))
        with engine.connect() as conn:
            latest = conn.execute(
                sa.text(
                    "SELECT count(*), min(target_week), max(target_week) FROM bi.forecast_latest"
                )
            ).one()
            runs = conn.execute(
                sa.text(
                    "SELECT week_start, status FROM ops.runs WHERE kind = 'weekly' ORDER BY run_id"
                )
            ).all()
        engine.dispose()
        assert latest == (4500, date(2026, 11, 23), date(2026, 11, 23))
        assert [(r.week_start, r.status) for r in runs] == [
            (date(2026, 11, 9), "succeeded"),
            (LAST_WEEK, "succeeded"),
        ]

        map_page = directory / "plots" / "map_2026-11-23.html"
        plot = directory / "plots" / "forecast_2026-11-23.png"
        assert map_page.stat().st_size > 10_000 and plot.stat().st_size > 10_000
        # it ends by saying where to look: the map, the plot, the commands and SQL for bi
        closing = out[out.index("Where to look") :]
        for expected in (str(map_page), str(plot), "crimejob map --week 2026-11-23",
                         "crimejob plot --week 2026-11-23", "FROM bi.forecast_latest",
                         "FROM bi.forecast_scores", "FROM bi.week_status"):  # fmt: skip
            assert expected in closing
    finally:
        assert stop_embedded(directory)  # the demo's PostgreSQL is left running for the user
        shutil.rmtree(directory.parent, ignore_errors=True)


def test_the_world_is_published_in_the_live_nibrs_format():
    """What the demo's portal serves maps cleanly through the job's own k7nn-b2ep parser."""
    world = la_world(seed=1, start=date(2026, 1, 5), weeks=3)
    # what the portal had published by mid-2026 (a late report dated after today is
    # rightly refused as implausible, so the cut-off is fixed and in the past)
    published_by = "2026-06-01"
    records = [
        r
        for r in nibrs_records(world, date(2026, 1, 5), date(2026, 1, 12))
        if r["date_rptd"] < published_by
    ]
    assert records and all(isinstance(v, str) for r in records[:50] for v in r.values())
    assert {"uniquenibrno", "caseno", "date_rptd", "hndrdth_lat", "nibr_description"} <= set(
        records[0]
    )
    mapped = map_api_records("k7nn-b2ep", records)
    assert len(mapped.rejects) == 0
    expected = world.records(date(2026, 1, 5), date(2026, 1, 12))
    expected = expected[expected["reported_at"] < published_by]
    assert len(mapped.records) == len(expected)
    assert mapped.records["is_violent"].sum() == expected["is_violent"].sum()
