"""The benchmark's real data sets, read from ../shared/data as the benchmark reads them."""

from __future__ import annotations

import numpy as np
import pandas as pd

from benchmarks.datasets import DTLA_BOX, DTLA_FILE, PHL_FILE, downtown_la, philadelphia


def test_philadelphia_counts_incidents_not_victims_on_60_by_75_cells(shared_data):
    dataset = philadelphia(shared_data)
    history = dataset.history

    raw = pd.read_csv(shared_data / PHL_FILE)
    incidents = raw.drop_duplicates("dc_key")
    day = pd.to_datetime(incidents["date_"].str[:10])
    in_weeks = day.between("2015-01-05", "2023-08-20") & incidents["lat"].notna()
    assert len(raw) == 14_861 and len(incidents) == 13_455  # victims, incidents
    assert history.crime.sum() == in_weeks.sum()
    assert dataset.dropped == incidents["lat"].isna().sum()
    assert history.shape == (60, 75) and len(history) == 450
    assert history.week(0).isoformat() == "2015-01-05"
    assert history.week(449).isoformat() == "2023-08-14"  # the last complete week
    assert np.array_equal(history.incidents, history.crime)  # violent counts only
    assert 25 < history.crime.sum(axis=(1, 2)).mean() < 32  # about 30 a week


def test_downtown_la_holds_every_incident_of_the_box_on_165_metre_cells(shared_data):
    dataset = downtown_la(shared_data)
    history = dataset.history

    raw = pd.read_csv(shared_data / DTLA_FILE)
    day = pd.to_datetime(raw["datetime_occ"])
    in_weeks = day.between("2016-01-04", "2017-04-02 23:59")
    assert history.crime.sum() == in_weeks.sum()
    assert history.shape == (10, 20) and len(history) == 65
    height_m = (DTLA_BOX["lat_max"] - DTLA_BOX["lat_min"]) * 111_000 / 10
    width_m = (DTLA_BOX["lon_max"] - DTLA_BOX["lon_min"]) * 111_000 * np.cos(np.radians(34.05)) / 20
    assert 150 < height_m < 180 and 150 < width_m < 180
    # A dense fine-scale series: most cells see incidents every few weeks.
    assert 0.5 < history.crime.mean() < 1.2
