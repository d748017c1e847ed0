"""The forecast benchmark's statistics: the best baseline and paired differences."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pytest

from benchmarks.bench_forecast import newey_west_se, paired_differences
from crimejob.models.backtest import BacktestResult


def test_newey_west_equals_the_plain_standard_error_on_independent_weeks_and_grows_on_trends():
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 1, 4000)
    assert newey_west_se(noise) == pytest.approx(noise.std() / np.sqrt(4000), rel=0.1)
    persistent = np.convolve(noise, np.ones(10), mode="same")  # autocorrelated weeks
    plain = persistent.std() / np.sqrt(len(persistent))
    assert newey_west_se(persistent) > 1.5 * plain


def test_paired_differences_pick_the_best_baseline_per_metric_and_its_direction():
    weeks = [date(2024, 1, 1) + timedelta(weeks=i) for i in range(6)]
    rows = []
    per_model = {  # (poisson_deviance, pei_5pct, mass_ratio) every week
        "mean_all": (0.30, 0.70, 0.90),
        "ewma": (0.32, 0.75, 1.02),
        "net": (0.28, 0.74, 1.10),
    }
    for model, (dev, pei, mass) in per_model.items():
        for i, week in enumerate(weeks):
            wiggle = 0.001 * i
            rows.append(
                {
                    "model": model,
                    "target_week": week,
                    "poisson_deviance": dev + wiggle,
                    "pei_5pct": pei + wiggle,
                    "mass_ratio": mass,
                }
            )
    result = BacktestResult(models=list(per_model), target_weeks=weeks, rows=rows)
    diffs = paired_differences(result, ["mean_all", "ewma"])

    assert diffs["poisson_deviance"]["best_baseline"] == "mean_all"  # lower is better
    assert diffs["pei_5pct"]["best_baseline"] == "ewma"  # higher is better
    assert diffs["mass_ratio"]["best_baseline"] == "ewma"  # closest to 1
    net = diffs["poisson_deviance"]["models"]["net"]
    assert net["diff"] == pytest.approx(-0.02) and net["se"] == pytest.approx(0, abs=1e-9)
    assert diffs["pei_5pct"]["models"]["net"]["diff"] == pytest.approx(-0.01)
    assert diffs["mass_ratio"]["models"]["net"]["diff"] == pytest.approx(0.08)
