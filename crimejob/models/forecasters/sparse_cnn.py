"""``sparse_cnn``: our network for sparse real counts, a learned correction to a shrunk rate.

Real violent counts are sparse (LA: ~0.13 per cell-week over the grid, two
thirds of the cells outside LAPD; Philadelphia's shootings: ~0.006), so the
strongest forecasts are long-run spatial rates. The network therefore starts
*at* such a rate and only learns a bounded multiplicative correction:

    log mu = log(offset) + clip(delta, -max_delta, max_delta)

- **The offset: an empirical-Bayes rate.** Each cell's long-run violent count
  ``y`` over ``T`` weeks is shrunk toward a prior rate ``m`` built from its
  neighbourhood and from all incidents: ``m`` is the mean of a Gaussian-kernel
  smoothing of the violent rate and the city's violent share x the smoothed
  all-incident rate. With a gamma prior of mean ``m`` and ``prior_strength``
  pseudo-incidents, the posterior mean is ``(y + a) / (T + a / m)``: a cell
  with many incidents keeps its own rate, a sparse one moves toward ``m``, and
  a cell in a neighbourhood where nothing is ever recorded gets ~``m`` ~ 0.
- **The footprint.** Cells with no incident of any kind in the history are
  outside the police footprint. Their offset is the prior times the share of
  it that cells outside the footprint of a year earlier actually saw since
  (measured in the history itself): ~0 on LA, where the footprint is LAPD's
  boundary, but not on Philadelphia, where ~1 shooting a week (3%) lands in a
  cell that never had one, and a forecast of 0 there costs ~12 deviance units
  each time. The footprint is also an input channel of the correction. Cells
  whose prior is ~0 (far from any recorded incident) stay 0 whatever the
  network says.
- **Corrections the network learns** from (a) a zero-initialised 1x1 linear
  layer over the log rate estimates (all history, 52/13/4 weeks, smoothed,
  all-incident based) and the city-wide signals — the recent city level
  against the long run, the NIBRS share and its change against the long run
  (the 2024 legacy -> NIBRS switch is a change of series, not of crime), the
  target week's season — and (b) a small non-linear path: space-time Conv3D
  over the last ``window`` weeks of violent counts, all-incident counts and
  weather, collapsed over time, then a 3x3 Conv2D with the rate maps.
  Its last layer is zero-initialised too, so an untrained model *is* the
  offset. L2 and dropout keep it small; early stopping on the newest
  (time-ordered) training targets stops it.
- **Poisson loss** on the positive rate (log link): the deviance it is scored on.
- **Horizon.** A sample is the window ending at week t and the counts of week
  t + ``horizon``; the season features are those of the target week.

About 2.4 thousand parameters and ~0.05 GFLOPs a forward pass
(``benchmarks/bench_models.py``): hundreds of times cheaper than seed_cnn.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import layers, ops
from scipy.ndimage import gaussian_filter

from crimejob.grid.cells import N_COLS, N_ROWS
from crimejob.grid.history import WEATHER_FEATURES, GridHistory
from crimejob.models.forecasters.keras_common import KerasForecaster, stack_windows
from crimejob.models.forecasters.rate_cnn import Log1p, weather_statistics

#: The rate maps and city-wide signals the correction reads (order = channel order).
MAP_FEATURES = (
    "log_offset", "log_mean_all", "log_mean52", "log_mean13", "log_mean4",
    "log_smoothed", "log_incident_rate", "log_incident13", "footprint",
    "city_level13", "city_level4", "nibrs_share", "nibrs_shift", "season_sin", "season_cos",
)  # fmt: skip
SEQUENCE_FEATURES = ("log_counts", "log_incidents", *WEATHER_FEATURES)
LOG_EPS = 1e-3


def _window_mean(cum: np.ndarray, ends: np.ndarray, weeks: int) -> np.ndarray:
    """Mean over the ``weeks`` weeks up to each end (0 = all weeks so far), from cumsums."""
    stop = ends + 1
    begin = np.zeros_like(stop) if weeks == 0 else np.maximum(stop - weeks, 0)
    shape = (-1,) + (1,) * (cum.ndim - 1)
    return (cum[stop] - cum[begin]) / (stop - begin).reshape(shape)


def _smooth(maps: np.ndarray, bandwidth: float) -> np.ndarray:
    """Gaussian smoothing of each (rows, cols) map in a stack (no smoothing across samples)."""
    if bandwidth <= 0:
        return maps
    return gaussian_filter(maps, (0, bandwidth, bandwidth), mode="constant")


def _prior(mean_all: np.ndarray, inc_all: np.ndarray, bandwidth: float):
    """The rate a cell is shrunk toward: its smoothed violent rate and the violent share x
    its smoothed all-incident rate, averaged. Returns (share, smoothed, incident_rate, prior)."""
    share = mean_all.sum((1, 2)) / np.maximum(inc_all.sum((1, 2)), 1e-9)
    share = share[:, None, None]
    smoothed = _smooth(mean_all, bandwidth)
    incident_rate = share * _smooth(inc_all, bandwidth)
    return share, smoothed, incident_rate, 0.5 * (smoothed + incident_rate)


def _outside_ratio(
    cum: np.ndarray, inc_cum: np.ndarray, ends: np.ndarray, bandwidth: float
) -> np.ndarray:
    """How much of its prior a cell outside the footprint really sees, from the history itself.

    The footprint as it was ``k`` weeks before each end (k = 52, or half the
    history if shorter): the violent incidents of the ``k`` weeks since in the
    cells outside it, over what their prior said. ~0 where the footprint is a
    real boundary (LAPD territory), larger where new cells do see incidents
    (Philadelphia's shootings). Clipped to [0, 1]; (n, 1, 1).
    """
    k = np.minimum(52, (ends + 1) // 2)
    then = ends - k
    out = np.ones(len(ends))
    ok = k > 0
    if ok.any():
        weeks_then = (then[ok] + 1).astype(np.float64)[:, None, None]
        mean_then = cum[then[ok] + 1] / weeks_then
        inc_then = inc_cum[then[ok] + 1] / weeks_then
        prior_then = _prior(mean_then, inc_then, bandwidth)[3]
        outside = inc_cum[then[ok] + 1] <= 0
        seen = ((cum[ends[ok] + 1] - cum[then[ok] + 1]) * outside).sum((1, 2))
        expected = (prior_then * outside).sum((1, 2)) * k[ok]
        out[ok] = np.clip(seen / np.maximum(expected, 1e-9), 0.0, 1.0)
    return out[:, None, None]


def rate_inputs(
    history: GridHistory,
    ends: np.ndarray,
    horizon: int,
    bandwidth: float = 1.5,
    prior_strength: float = 2.0,
) -> tuple[np.ndarray, np.ndarray]:
    """(offset, maps) for windows ending at each index in ``ends``, from weeks <= t only.

    offset: (n, rows, cols) the empirical-Bayes rate; maps: (n, rows, cols,
    len(MAP_FEATURES)), the channels listed in :data:`MAP_FEATURES`.
    """
    ends = np.asarray(ends, np.int64)
    crime = history.crime.astype(np.float64)
    incidents = history.incidents.astype(np.float64)
    zero = np.zeros((1, *crime.shape[1:]))
    cum = np.concatenate([zero, np.cumsum(crime, axis=0)])
    inc_cum = np.concatenate([zero, np.cumsum(incidents, axis=0)])
    weeks = (ends + 1).astype(np.float64)[:, None, None]

    mean_all = _window_mean(cum, ends, 0)
    inc_all = _window_mean(inc_cum, ends, 0)
    share, smoothed, incident_rate, prior = _prior(mean_all, inc_all, bandwidth)
    a = float(prior_strength)
    offset = (mean_all * weeks + a) / (weeks + a / np.maximum(prior, 1e-12))
    offset = np.where(prior > 1e-9, offset, 0.0)
    footprint = inc_cum[ends + 1] > 0
    offset = np.where(footprint, offset, _outside_ratio(cum, inc_cum, ends, bandwidth) * offset)
    footprint = footprint.astype(np.float64)

    city = crime.reshape(len(crime), -1).sum(axis=1)
    city_cum = np.concatenate([[0.0], np.cumsum(city)])
    city_all = _window_mean(city_cum, ends, 0)

    def city_level(w: int) -> np.ndarray:
        return np.log((_window_mean(city_cum, ends, w) + 1.0) / (city_all + 1.0))

    nibrs = np.asarray(history.nibrs_share, np.float64)
    nibrs_cum = np.concatenate([[0.0], np.cumsum(nibrs)])
    target_day = (
        (history.week_starts[ends] + np.timedelta64(7 * int(horizon), "D"))
        .astype("datetime64[D]")
        .astype(object)
    )
    angle = 2 * np.pi * np.array([d.timetuple().tm_yday for d in target_day]) / 365.25
    scalars = np.stack(
        [
            city_level(13),
            city_level(4),
            nibrs[ends],
            nibrs[ends] - _window_mean(nibrs_cum, ends, 0),
            np.sin(angle),
            np.cos(angle),
        ],
        axis=-1,
    )

    def log(x: np.ndarray) -> np.ndarray:
        return np.log(x + LOG_EPS)

    maps = [
        log(offset),
        log(mean_all),
        log(_window_mean(cum, ends, 52)),
        log(_window_mean(cum, ends, 13)),
        log(_window_mean(cum, ends, 4)),
        log(smoothed),
        log(incident_rate),
        log(share * _window_mean(inc_cum, ends, 13)),
        footprint,
    ]
    rows, cols = crime.shape[1:]
    maps += [np.broadcast_to(s[:, None, None], (len(ends), rows, cols)) for s in scalars.T]
    return offset.astype(np.float32), np.stack(maps, axis=-1).astype(np.float32)


@keras.saving.register_keras_serializable(package="crimejob")
class CorrectedRate(layers.Layer):
    """mu = offset * exp(clip(delta)): the learned multiplicative correction of the offset."""

    def __init__(self, max_delta: float = 4.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_delta = float(max_delta)

    def call(self, inputs):
        offset, delta = inputs
        delta = ops.clip(ops.cast(delta, "float32"), -self.max_delta, self.max_delta)
        return ops.cast(offset, "float32") * ops.exp(delta)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "max_delta": self.max_delta}


def build_sparse_cnn(
    window: int = 6,
    filters: int = 4,
    head_filters: int = 8,
    rows: int = N_ROWS,
    cols: int = N_COLS,
    weather_mean: np.ndarray | None = None,
    weather_variance: np.ndarray | None = None,
    map_mean: np.ndarray | None = None,
    map_variance: np.ndarray | None = None,
    l2: float = 1e-4,
    dropout: float = 0.1,
    max_delta: float = 4.0,
):
    """The network; input statistics default to "no scaling"."""
    n_weather, n_maps = len(WEATHER_FEATURES), len(MAP_FEATURES)
    w_mean = np.zeros(n_weather, np.float32) if weather_mean is None else weather_mean
    w_var = np.ones(n_weather, np.float32) if weather_variance is None else weather_variance
    m_mean = np.zeros(n_maps, np.float32) if map_mean is None else map_mean
    m_var = np.ones(n_maps, np.float32) if map_variance is None else map_variance
    reg = keras.regularizers.L2(l2)

    counts = keras.Input((window, rows, cols, 2), name="counts")
    weather = keras.Input((window, rows, cols, n_weather), name="weather")
    maps = keras.Input((rows, cols, n_maps), name="maps")
    offset = keras.Input((rows, cols, 1), name="offset")

    x = layers.Concatenate(name="sequence")(
        [
            Log1p(name="log_counts")(counts),
            layers.Normalization(axis=-1, mean=w_mean, variance=w_var, name="weather_scaled")(
                weather
            ),
        ]
    )
    x = layers.Conv3D(
        filters, 3, padding="same", activation="relu", kernel_regularizer=reg, name="st_conv"
    )(x)
    x = layers.Conv3D(
        filters, (window, 1, 1), activation="relu", kernel_regularizer=reg, name="collapse_time"
    )(x)
    x = layers.Reshape((rows, cols, filters), name="recent")(x)
    scaled_maps = layers.Normalization(axis=-1, mean=m_mean, variance=m_var, name="maps_scaled")(
        maps
    )
    h = layers.Concatenate(name="with_rates")([x, scaled_maps])
    h = layers.Conv2D(
        head_filters, 3, padding="same", activation="relu", kernel_regularizer=reg, name="map_conv"
    )(h)
    h = layers.Dropout(dropout, name="dropout")(h)
    nonlinear = layers.Conv2D(
        1, 1, kernel_initializer="zeros", bias_initializer="zeros", kernel_regularizer=reg,
        name="delta_net", dtype="float32",
    )(h)  # fmt: skip
    linear = layers.Conv2D(
        1, 1, kernel_initializer="zeros", bias_initializer="zeros", name="delta_linear",
        dtype="float32",
    )(scaled_maps)  # fmt: skip
    delta = layers.Add(name="delta", dtype="float32")([linear, nonlinear])
    mu = CorrectedRate(max_delta, name="rate", dtype="float32")([offset, delta])
    return keras.Model([counts, weather, maps, offset], mu, name="sparse_cnn")


class SparseCNN(KerasForecaster):
    """See the module docstring."""

    name = "sparse_cnn"

    @classmethod
    def default_hyperparameters(cls) -> dict[str, Any]:
        return {
            **super().default_hyperparameters(),
            "window": 6,
            "filters": 4,
            "head_filters": 8,
            "bandwidth": 1.5,
            "prior_strength": 2.0,
            "l2": 1e-4,
            "dropout": 0.1,
            "max_delta": 4.0,
            "epochs": 20,
            "batch_size": 8,
            "gpu_batch_size": 32,
            "learning_rate": 3e-3,
            "validation_fraction": 0.2,
            "patience": 3,
            "max_train_windows": 104,
            "finetune_epochs": 2,
            "finetune_windows": 12,
            "finetune_validation_weeks": 4,
            "finetune_learning_rate": 5e-4,
        }

    def loss(self):
        return keras.losses.Poisson()

    def model_inputs(self, history: GridHistory, ends: np.ndarray) -> dict[str, np.ndarray]:
        window = int(self.hp["window"])
        ends = np.asarray(ends)
        offset, maps = rate_inputs(
            history,
            ends,
            self.horizon,
            float(self.hp["bandwidth"]),
            float(self.hp["prior_strength"]),
        )
        share = history.crime.sum() / max(float(history.incidents.sum()), 1e-9)
        counts = np.stack(
            [
                stack_windows(history.crime, ends, window),
                share * stack_windows(history.incidents, ends, window),
            ],
            axis=-1,
        )
        return {
            "counts": counts.astype(np.float32),
            "weather": stack_windows(history.weather, ends, window),
            "maps": maps,
            "offset": offset[..., None],
        }

    def build_model(self, history: GridHistory, train_ends: np.ndarray):
        # Statistics of the training windows' inputs only, never of later weeks.
        last = int(np.max(train_ends)) + 1
        w_mean, w_var = weather_statistics(history.weather[:last])
        _, maps = rate_inputs(
            history,
            np.asarray(train_ends),
            self.horizon,
            float(self.hp["bandwidth"]),
            float(self.hp["prior_strength"]),
        )
        flat = maps.reshape(-1, maps.shape[-1]).astype(np.float64)
        m_mean, m_var = flat.mean(axis=0), flat.var(axis=0)
        m_var = np.where(m_var < 1e-6, 1.0, m_var)
        rows, cols = history.shape
        return build_sparse_cnn(
            window=int(self.hp["window"]),
            filters=int(self.hp["filters"]),
            head_filters=int(self.hp["head_filters"]),
            rows=rows,
            cols=cols,
            weather_mean=w_mean,
            weather_variance=w_var,
            map_mean=m_mean.astype(np.float32),
            map_variance=m_var.astype(np.float32),
            l2=float(self.hp["l2"]),
            dropout=float(self.hp["dropout"]),
            max_delta=float(self.hp["max_delta"]),
        )
