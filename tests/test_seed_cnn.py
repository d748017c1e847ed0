"""seed_cnn: the prototype's architecture and defaults, reproduced exactly."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from crimejob.devworld import la_world
from crimejob.models.forecasters import get_forecaster
from crimejob.models.forecasters.seed_cnn import build_seed_cnn, seed_cnn_parameter_count


def test_parameter_count_matches_the_architecture_computed_by_hand():
    # Each branch: Conv3D(32, 3x3x3) on C channels: 27*C*32 + 32; Conv3D(64): 27*32*64 + 64;
    # valid convs take (20, 60, 75) to (16, 56, 71); MaxPooling3D(2) to (8, 28, 35);
    # Flatten: 8*28*35*64 = 501,760 values into Dense(64): 501,760*64 + 64.
    flatten = 8 * 28 * 35 * 64
    crime_branch = (27 * 1 * 32 + 32) + (27 * 32 * 64 + 64) + (flatten * 64 + 64)
    weather_branch = (27 * 3 * 32 + 32) + (27 * 32 * 64 + 64) + (flatten * 64 + 64)
    head = 128 * 4500 + 4500  # Dense(4500) on the concatenated 64 + 64
    by_hand = crime_branch + weather_branch + head
    assert by_hand == 64_920_148 == seed_cnn_parameter_count()

    model = build_seed_cnn()

    assert model.count_params() == by_hand
    assert [tuple(i.shape) for i in model.inputs] == [(None, 20, 60, 75, 1), (None, 20, 60, 75, 3)]
    assert tuple(model.output.shape) == (None, 60, 75, 1)
    assert model.get_layer("crime_flatten").output.shape[-1] == flatten
    assert model.get_layer("cells").activation.__name__ == "relu"


def test_registered_defaults_are_the_prototypes():
    forecaster = get_forecaster("seed_cnn")
    hp = forecaster.hyperparameters()

    assert (hp["window"], hp["epochs"], hp["batch_size"]) == (20, 50, 8)
    assert hp["learning_rate"] == 1e-3 and hp["validation_fraction"] == 0.2
    assert type(forecaster.loss()).__name__ == "MeanSquaredError"


@pytest.mark.slow
def test_a_small_budget_fit_validates_on_the_newest_weeks_and_forecasts_every_cell():
    history = la_world(seed=2, start=date(2021, 1, 4), weeks=27).history()
    forecaster = get_forecaster("seed_cnn", epochs=1, max_train_windows=2)

    report = forecaster.fit(history)
    forecast = forecaster.predict(history)

    # Windows end at weeks 19..25 (targets 20..26): 4 validation targets, newest last.
    assert len(report.validation_targets) == 4
    assert report.validation_targets[-1] == history.last_week
    assert max(report.train_targets) < min(report.validation_targets)
    assert len(report.train_targets) == 2 and report.epochs_run == 1
    assert forecast.shape == (60, 75) and np.all(forecast >= 0)
