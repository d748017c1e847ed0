"""``rate_cnn``: our Conv3D forecaster, a learned correction to each cell's long-run rate.

Why this design (the backtest numbers are in the benchmark and the report):

- **A long-run cell rate as input, and as the starting point.** Weekly counts
  average ~0.5 a cell, so any few-week window is mostly noise; the mean of the
  last ``rate_weeks`` weeks is the strongest single predictor (104 weeks
  ranked hotspots better than 52 on the synthetic backtest; a learned 5x5
  smoothing of the rate was tried and gained nothing, so it is not here). The network
  outputs ``mu = exp(log(rate + eps) + delta)`` and its last layer starts at
  zero, so an untrained model *is* the long-run rate and training only has to
  learn corrections: spatial smoothing of the rate, recent trend, and the
  weather and holiday effects.
- **Count-aware loss.** Poisson negative log-likelihood on a positive rate
  (log link), not MSE: it is the deviance we are scored on, it does not chase
  the rare large counts, and ``mu`` can never be negative.
- **Scaled inputs, inside the model.** Counts enter as ``log1p``, weather is
  standardised with statistics of the training weeks stored in a
  ``Normalization`` layer, so a saved ``.keras`` file is self-contained.
- **Spatial structure kept to the output.** Fully convolutional: two small
  ``same``-padded Conv3D layers over the last ``window`` weeks, a Conv3D
  spanning the whole window that collapses time (one weight per lag), then
  Conv2D layers on the 60 x 75 map. No Flatten, no Dense: about 6 thousand
  parameters (6,129) against the seed's 64.9 million, and ~0.2 GFLOPs a forward pass
  against ~14.7, which is what makes a weekly CPU fine-tune take seconds.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import layers, ops

from crimejob.grid.cells import N_COLS, N_ROWS
from crimejob.grid.history import WEATHER_FEATURES, GridHistory
from crimejob.models.forecasters.keras_common import KerasForecaster, stack_windows, trailing_mean


@keras.saving.register_keras_serializable(package="crimejob")
class Log1p(layers.Layer):
    """log(1 + counts): tames the heavy right tail of weekly counts."""

    def call(self, inputs):
        return ops.log1p(inputs)


@keras.saving.register_keras_serializable(package="crimejob")
class LogRate(layers.Layer):
    """log(rate + eps): the long-run rate on the scale the output works on."""

    def __init__(self, eps: float = 0.02, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.eps = float(eps)

    def call(self, inputs):
        return ops.log(inputs + self.eps)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "eps": self.eps}


@keras.saving.register_keras_serializable(package="crimejob")
class RateFromLog(layers.Layer):
    """mu = exp(log_rate + delta), delta clipped so a bad step cannot overflow."""

    def __init__(self, max_delta: float = 5.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_delta = float(max_delta)

    def call(self, inputs):
        log_rate, delta = inputs
        delta = ops.clip(ops.cast(delta, "float32"), -self.max_delta, self.max_delta)
        return ops.exp(ops.cast(log_rate, "float32") + delta)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "max_delta": self.max_delta}


def weather_statistics(weather: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and variance over the given weeks and cells (variance floored at 1)."""
    flat = weather.reshape(-1, weather.shape[-1]).astype(np.float64)
    mean, var = flat.mean(axis=0), flat.var(axis=0)
    return mean.astype(np.float32), np.where(var < 1e-6, 1.0, var).astype(np.float32)


def build_rate_cnn(
    window: int = 8,
    filters: int = 8,
    head_filters: int = 16,
    rows: int = N_ROWS,
    cols: int = N_COLS,
    weather_mean: np.ndarray | None = None,
    weather_variance: np.ndarray | None = None,
    rate_eps: float = 0.02,
):
    """The network; weather statistics default to "no scaling" (mean 0, variance 1)."""
    n_weather = len(WEATHER_FEATURES)
    mean = np.zeros(n_weather, np.float32) if weather_mean is None else weather_mean
    var = np.ones(n_weather, np.float32) if weather_variance is None else weather_variance

    crime = keras.Input((window, rows, cols, 1), name="crime")
    weather = keras.Input((window, rows, cols, n_weather), name="weather")
    rate = keras.Input((rows, cols, 1), name="long_run_rate")

    x = layers.Concatenate(name="inputs")(
        [
            Log1p(name="log_counts")(crime),
            layers.Normalization(axis=-1, mean=mean, variance=var, name="weather_scaled")(weather),
        ]
    )
    x = layers.Conv3D(filters, 3, padding="same", activation="relu", name="st_conv1")(x)
    x = layers.Conv3D(filters, 3, padding="same", activation="relu", name="st_conv2")(x)
    x = layers.Conv3D(
        head_filters, (window, 1, 1), padding="valid", activation="relu", name="collapse_time"
    )(x)
    x = layers.Reshape((rows, cols, head_filters), name="map")(x)
    log_rate = LogRate(rate_eps, name="log_rate")(rate)
    x = layers.Concatenate(name="with_rate")([x, log_rate])
    x = layers.Conv2D(head_filters, 3, padding="same", activation="relu", name="map_conv")(x)
    delta = layers.Conv2D(
        1, 1, kernel_initializer="zeros", bias_initializer="zeros", name="delta", dtype="float32"
    )(x)
    mu = RateFromLog(name="rate", dtype="float32")([log_rate, delta])
    return keras.Model([crime, weather, rate], mu, name="rate_cnn")


class RateCNN(KerasForecaster):
    name = "rate_cnn"

    @classmethod
    def default_hyperparameters(cls) -> dict[str, Any]:
        return {
            **super().default_hyperparameters(),
            "rescale_series": True,
            "window": 8,
            "filters": 8,
            "head_filters": 16,
            "rate_weeks": 104,
            "rate_eps": 0.02,
            "epochs": 30,
            "batch_size": 8,
            "gpu_batch_size": 64,
            "learning_rate": 3e-3,
            "validation_fraction": 0.2,
            "patience": 4,
            "max_train_windows": 104,
            "finetune_epochs": 3,
            "finetune_windows": 12,
            "finetune_validation_weeks": 4,
            "finetune_learning_rate": 1e-3,
        }

    def loss(self):
        return keras.losses.Poisson()

    def model_inputs(self, history: GridHistory, ends: np.ndarray) -> dict[str, np.ndarray]:
        window = int(self.hp["window"])
        return {
            "crime": stack_windows(history.crime, ends, window)[..., None],
            "weather": stack_windows(history.weather, ends, window),
            "long_run_rate": trailing_mean(history.crime, ends, int(self.hp["rate_weeks"]))[
                ..., None
            ],
        }

    def build_model(self, history: GridHistory, train_ends: np.ndarray):
        # Statistics of the weeks the training windows read, never of later weeks.
        last = int(np.max(train_ends)) + 1
        mean, var = weather_statistics(history.weather[:last])
        rows, cols = history.shape
        return build_rate_cnn(
            window=int(self.hp["window"]),
            rows=rows,
            cols=cols,
            filters=int(self.hp["filters"]),
            head_filters=int(self.hp["head_filters"]),
            weather_mean=mean,
            weather_variance=var,
            rate_eps=float(self.hp["rate_eps"]),
        )
