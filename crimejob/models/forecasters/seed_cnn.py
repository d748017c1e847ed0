"""``seed_cnn``: the prototype's Conv3D model, reproduced faithfully.

Two inputs, crime (20, 60, 75, 1) and weather (20, 60, 75, 3) (mean
temperature, total rain, holiday), fed as they are (the prototype scaled
nothing); each branch Conv3D(32, 3x3x3, valid, relu), Conv3D(64, 3x3x3,
valid, relu), MaxPooling3D(2x2x2), Flatten, Dense(64, relu); concatenate;
Dense(4500, relu); reshape (60, 75, 1). Adam 1e-3, MSE, 50 epochs, batch 8,
time-ordered 80/20 split: these are its registered defaults.

It is expensive: each branch's Dense(64) reads a 501,760-wide flatten, so of
its 64,920,148 parameters 64,225,408 sit in those two layers, and a forward
pass is about 14.7 GFLOPs. Backtests and tests pass smaller budgets
(``epochs``, ``max_train_windows``, ``finetune_*``) explicitly and say so.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from crimejob.grid.cells import N_COLS, N_ROWS
from crimejob.grid.history import WEATHER_FEATURES, GridHistory
from crimejob.models.forecasters.keras_common import KerasForecaster, stack_windows


def seed_cnn_parameter_count(
    window: int = 20, rows: int = N_ROWS, cols: int = N_COLS, n_weather: int = 3
) -> int:
    """The parameter count of the architecture, by hand (what the test checks against)."""

    def branch(channels: int) -> int:
        conv1 = 3 * 3 * 3 * channels * 32 + 32
        conv2 = 3 * 3 * 3 * 32 * 64 + 64
        t, r, c = (window - 4) // 2, (rows - 4) // 2, (cols - 4) // 2
        dense = t * r * c * 64 * 64 + 64
        return conv1 + conv2 + dense

    head = (64 + 64) * rows * cols + rows * cols
    return branch(1) + branch(n_weather) + head


class SeedCNN(KerasForecaster):
    name = "seed_cnn"

    @classmethod
    def default_hyperparameters(cls) -> dict[str, Any]:
        return {
            **super().default_hyperparameters(),
            "window": 20,
            "epochs": 50,
            "batch_size": 8,
            "gpu_batch_size": 32,
            "learning_rate": 1e-3,
            "validation_fraction": 0.2,
            "patience": 5,
        }

    def loss(self):
        import keras

        return keras.losses.MeanSquaredError()

    def model_inputs(self, history: GridHistory, ends: np.ndarray) -> dict[str, np.ndarray]:
        window = int(self.hp["window"])
        return {
            "crime": stack_windows(history.crime, ends, window)[..., None],
            "weather": stack_windows(history.weather, ends, window),
        }

    def build_model(self, history: GridHistory | None = None, train_ends=None):
        rows, cols = history.shape if history is not None else (N_ROWS, N_COLS)
        return build_seed_cnn(int(self.hp["window"]), rows, cols)


def build_seed_cnn(window: int = 20, rows: int = N_ROWS, cols: int = N_COLS):
    """The prototype's network, layer for layer."""
    import keras
    from keras import layers

    def branch(inputs, prefix: str):
        x = layers.Conv3D(32, 3, padding="valid", activation="relu", name=f"{prefix}_conv1")(inputs)
        x = layers.Conv3D(64, 3, padding="valid", activation="relu", name=f"{prefix}_conv2")(x)
        x = layers.MaxPooling3D(2, name=f"{prefix}_pool")(x)
        x = layers.Flatten(name=f"{prefix}_flatten")(x)
        return layers.Dense(64, activation="relu", name=f"{prefix}_dense")(x)

    crime = keras.Input((window, rows, cols, 1), name="crime")
    weather = keras.Input((window, rows, cols, len(WEATHER_FEATURES)), name="weather")
    merged = layers.Concatenate(name="merge")([branch(crime, "crime"), branch(weather, "weather")])
    out = layers.Dense(rows * cols, activation="relu", name="cells", dtype="float32")(merged)
    out = layers.Reshape((rows, cols, 1), name="grid", dtype="float32")(out)
    return keras.Model([crime, weather], out, name="seed_cnn")
