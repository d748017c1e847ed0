"""rate_cnn: shapes, its parameter budget, artifacts, determinism, and that it learns."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pytest

from crimejob.devworld import la_world
from crimejob.models.forecasters import get_forecaster
from crimejob.models.forecasters.keras_common import trailing_mean
from crimejob.models.forecasters.rate_cnn import build_rate_cnn
from crimejob.models.metrics import active_cells, mean_scores, score_forecast

TINY = {"epochs": 2, "max_train_windows": 6, "finetune_epochs": 1, "finetune_windows": 3}


@pytest.fixture(scope="module")
def history():
    return la_world(seed=4, start=date(2021, 1, 4), weeks=40).history()


def test_parameter_count_matches_the_architecture_computed_by_hand():
    model = build_rate_cnn(window=8, filters=8, head_filters=16)

    conv1 = 27 * 4 * 8 + 8  # 3x3x3 over log counts + 3 weather channels
    conv2 = 27 * 8 * 8 + 8
    collapse = 8 * 8 * 16 + 16  # one weight per lag: kernel (8, 1, 1)
    map_conv = 9 * (16 + 1) * 16 + 16  # 3x3 over the 16 maps and the log rate
    delta = 16 + 1 + 1
    assert model.count_params() == conv1 + conv2 + collapse + map_conv + delta - 1 == 6129
    assert tuple(model.output.shape) == (None, 60, 75, 1)
    # Fully convolutional: nothing flattens the map.
    assert not any(type(layer).__name__ in {"Flatten", "Dense"} for layer in model.layers)


def test_untrained_it_forecasts_the_long_run_rate(history):
    forecaster = get_forecaster("rate_cnn", epochs=0)
    forecaster.fit(history)

    rate = trailing_mean(history.crime, np.array([len(history) - 1]), 104)[0]

    assert np.allclose(forecaster.predict(history), rate + 0.02, atol=1e-5)


@pytest.mark.slow
def test_a_saved_and_reloaded_model_predicts_the_same(history, tmp_path):
    forecaster = get_forecaster("rate_cnn", **TINY)
    forecaster.fit(history)
    path = forecaster.save(tmp_path / "rate.keras")

    reloaded = get_forecaster("rate_cnn", **TINY).load(path)

    assert path.suffix == ".keras" and path.stat().st_size > 0
    np.testing.assert_array_equal(reloaded.predict(history), forecaster.predict(history))


@pytest.mark.slow
def test_fits_are_deterministic_on_cpu_and_fine_tuning_moves_from_the_current_weights(history):
    first = get_forecaster("rate_cnn", **TINY)
    second = get_forecaster("rate_cnn", **TINY)
    first.fit(history.through(history.last_week - timedelta(weeks=1)))
    second.fit(history.through(history.last_week - timedelta(weeks=1)))
    for a, b in zip(first.model.get_weights(), second.model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)

    before = [w.copy() for w in first.model.get_weights()]
    report = first.update(history)
    after = first.model.get_weights()

    assert report.mode == "finetune" and len(report.train_targets) == TINY["finetune_windows"]
    moved = [np.abs(a - b).max() for a, b in zip(before, after, strict=True)]
    assert max(moved) > 0  # it trained ...
    # ... starting from where it was: one small epoch moves no weight far.
    assert max(moved) < 0.05


@pytest.mark.slow
def test_trained_on_the_la_world_it_beats_mean_4w():
    """Sparse LA-like counts: a 4-week mean is mostly noise, a trained rate is not."""
    history = la_world(seed=11, start=date(2021, 1, 4), weeks=100).history()
    split = 80
    budget = {"epochs": 12, "max_train_windows": 48, "patience": 3}
    trained = get_forecaster("rate_cnn", **budget)
    untrained = get_forecaster("rate_cnn", epochs=0)
    train_history = history.through(history.week_starts[split - 1].item())
    trained.fit(train_history)
    untrained.fit(train_history)

    def backtest(forecaster):
        rows = []
        for i in range(split, len(history)):
            past = history.through(history.week_starts[i - 1].item())
            predicted = forecaster.predict(past)
            rows.append(score_forecast(predicted, history.crime[i], active_cells(past.crime)))
        return mean_scores(rows)

    ours, rate_only = backtest(trained), backtest(untrained)
    mean_4w = backtest(get_forecaster("mean_4w"))

    assert ours["poisson_deviance"] < mean_4w["poisson_deviance"]
    assert ours["pai_5pct"] > mean_4w["pai_5pct"]
    # Training moved it away from the long-run rate it starts from, without harm.
    assert ours["poisson_deviance"] < rate_only["poisson_deviance"] * 1.02
