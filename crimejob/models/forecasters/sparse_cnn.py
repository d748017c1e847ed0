"""``sparse_cnn``: our network for sparse real counts, a learned correction to a shrunk rate.

Real violent counts are sparse (LA: ~0.13 per cell-week over the grid, two
thirds of the cells outside LAPD; Philadelphia's shootings: ~0.006), so the
strongest forecasts are long-run spatial rates. The network therefore starts
*at* such a rate and only learns a bounded multiplicative correction:

    log mu = log(offset) + clip(delta, -max_delta, max_delta)

- **The offset: a recent, shrunk rate** (:func:`recent_offset`). Places drift
  (LA's cells change their share of the city over a year or two; a city's
  level moves), so an all-history mean is stale by the time it is used. Each
  cell's violent counts are weighted by recency (half-life ``h`` weeks) and
  shrunk toward a prior ``m``: the neighbourhood's long-run violent share of
  all incidents (a wide kernel) x the cell's own recency-weighted all-incident
  rate (smoothed by ``b`` cells), the dense leading indicator. With a gamma
  prior of mean ``m`` and ``s`` pseudo-incidents the rate is
  ``(y_h + s) / (T_h + s / m)``; a cell where nothing of any kind is ever
  recorded (outside LAPD) has ``m = 0`` and gets 0. ``h`` (26, 52, 104 weeks or
  all), ``s`` and ``b`` are chosen like the baselines choose theirs
  (:func:`choose_offset`): scored on the newest 26 weeks of the history the
  model is given, estimated from the weeks before them; never on a forecast
  week. Where the data have violent counts only (Philadelphia) the prior is
  the smoothed violent rate, and the choice of ``b`` decides how much mass
  cells that never had an incident get. The history is first brought to the
  newest series' recording level (``rescale_series``: the 2024 NIBRS switch is
  a change of recording, not of crime).
- **The blend** (``offset="blend"``, the default): the mean of the recent rate
  and the ``lgbm`` baseline's forecast from the same weeks
  (:func:`booster_rates`), a residual on top of the strongest baseline.
  Untrained it beats ``lgbm`` on the LA world and Philadelphia
  (``benchmarks/README.md``); ``offset="recent"`` is the shrunk rate alone.
- **The gate on the correction.** On top of a strong offset a learned
  correction does not always pay for itself, so it is kept only as far as it
  does on weeks nothing was fitted to: ``mu = offset * exp(a * delta)``, with
  ``a`` in :data:`CORRECTION_SCALES` (0 = the offset alone) chosen on the
  newest ``gate_memory`` target weeks of evidence: at a retrain the newest
  ``gate_weeks`` validation windows (held out of early stopping too), then at
  each fine-tune the newest target week, scored with the weights from before
  it. The choice and its evidence are saved with the model and reported in
  the fit report's ``details`` (the registry's ``fit``).
- **The first design's offset** (``offset="longrun"``, kept for the ablation
  and as the input map ``log_longrun``): an empirical-Bayes rate over all
  history, ``(y + a) / (T + a / m)`` with ``m`` the mean of a smoothed violent
  rate and the city share x the smoothed all-incident rate; outside the
  footprint it is scaled by the share of its prior such cells actually saw
  (``_outside_ratio``).
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

About 2.1 thousand parameters and ~0.05 GFLOPs a forward pass
(``benchmarks/bench_models.py``): hundreds of times cheaper than seed_cnn.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import keras
import numpy as np
from keras import layers, ops
from scipy.ndimage import gaussian_filter

from crimejob.grid.cells import N_COLS, N_ROWS
from crimejob.grid.history import WEATHER_FEATURES, GridHistory
from crimejob.grid.series_break import rescale_to_current_series
from crimejob.models.forecasters.base import FitReport
from crimejob.models.forecasters.keras_common import (
    KerasForecaster,
    _week_dates,
    seed_everything,
    stack_windows,
    window_ends,
)
from crimejob.models.forecasters.rate_cnn import Log1p, weather_statistics
from crimejob.models.metrics import poisson_deviance_per_cell

#: The rate maps and city-wide signals the correction reads (order = channel order).
MAP_FEATURES = (
    "log_offset", "log_longrun", "log_booster",
    "log_mean_all", "log_mean52", "log_mean13", "log_mean4",
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


#: Options of the recent offset, each scored on the history's own held-out newest weeks.
OFFSET_HALF_LIVES = (26, 52, 104, 0)  # weeks; 0 = every week weighs the same
OFFSET_STRENGTHS = (1.0, 3.0, 10.0, 30.0)  # the prior's pseudo-incidents
OFFSET_BANDWIDTHS = (0.0, 0.5, 1.0, 2.0)  # the all-incident rate's smoothing, in cells
SHARE_BANDWIDTH = 4.0
OFFSET_KINDS = (
    "blend",
    "recent",
    "longrun",
)  # the neighbourhood of a cell's violent share, in cells
OFFSET_HOLDOUT_WEEKS = 26
#: The shrinkage of the learned correction the gate chooses among (0 = the offset alone).
CORRECTION_SCALES = (0.0, 0.25, 0.5, 0.75, 1.0)


def _decayed_sums(grids: np.ndarray, half_life: float) -> tuple[np.ndarray, np.ndarray]:
    """(T, rows, cols) recency-weighted sums through each week (weight 1/2 per
    ``half_life`` weeks of age; 0 = no decay) and (T,) the sums of the weights."""
    decay = 1.0 if half_life <= 0 else 0.5 ** (1.0 / half_life)
    sums = np.empty(grids.shape, np.float64)
    weights = np.empty(len(grids), np.float64)
    s, w = np.zeros(grids.shape[1:], np.float64), 0.0
    for t in range(len(grids)):
        s = decay * s + grids[t]
        w = decay * w + 1.0
        sums[t], weights[t] = s, w
    return sums, weights


def _local_share(violent: np.ndarray, incidents: np.ndarray) -> np.ndarray:
    """Each cell's neighbourhood violent share of all incidents (a wide kernel over
    (n, rows, cols) long-run sums); the whole grid's share where nothing is near."""
    near_v = _smooth(violent, SHARE_BANDWIDTH)
    near_i = _smooth(incidents, SHARE_BANDWIDTH)
    overall = violent.sum((1, 2)) / np.maximum(incidents.sum((1, 2)), 1e-9)
    overall = np.broadcast_to(overall[:, None, None], violent.shape)
    return np.where(near_i > 1e-9, near_v / np.maximum(near_i, 1e-9), overall)


def _recent_rate(
    violent: np.ndarray, weights: np.ndarray, incident_rate: np.ndarray, strength: float
) -> np.ndarray:
    """Gamma-Poisson posterior mean: ``violent`` recency-weighted counts over ``weights``
    weeks, shrunk toward ``incident_rate`` (the prior mean) with ``strength``
    pseudo-incidents; 0 where the prior is 0 (outside anything ever recorded)."""
    prior = np.maximum(incident_rate, 1e-12)
    weeks = np.reshape(weights, (-1,) + (1,) * (violent.ndim - 1))
    rate = (violent + strength) / (weeks + strength / prior)
    return np.where(incident_rate > 1e-12, rate, 0.0)


def choose_offset(history: GridHistory, holdout_weeks: int = OFFSET_HOLDOUT_WEEKS) -> dict:
    """The recent offset's options with the lowest mean Poisson deviance on the
    history's newest ``holdout_weeks`` (at most a quarter of it), estimated from the
    weeks before them: half-life, prior strength, all-incident bandwidth."""
    v = min(int(holdout_weeks), len(history) // 4)
    default = {"half_life": 52, "strength": 10.0, "bandwidth": 0.0}
    if v == 0:
        return default
    crime = history.crime.astype(np.float64)
    incidents = history.incidents.astype(np.float64)
    fit_c, fit_i, held = crime[:-v], incidents[:-v], crime[-v:]
    share = _local_share(fit_c.sum(0)[None], fit_i.sum(0)[None])
    scores = {}
    for half_life in OFFSET_HALF_LIVES:
        vs, w = _decayed_sums(fit_c, half_life)
        ins, _ = _decayed_sums(fit_i, half_life)
        vs, w, ins = vs[-1:], w[-1:], ins[-1:]
        for bandwidth in OFFSET_BANDWIDTHS:
            prior = share * _smooth(ins / w[:, None, None], bandwidth)
            for strength in OFFSET_STRENGTHS:
                rate = _recent_rate(vs, w, prior, strength)
                deviance = poisson_deviance_per_cell(rate, held)
                scores[(half_life, strength, bandwidth)] = float(deviance.mean())
    half_life, strength, bandwidth = min(scores, key=scores.get)
    return {"half_life": half_life, "strength": strength, "bandwidth": bandwidth}


def recent_offset(history: GridHistory, ends: np.ndarray, choice: dict) -> np.ndarray:
    """(n, rows, cols) the recent offset for windows ending at each index in ``ends``:
    each cell's recency-weighted violent rate shrunk toward its neighbourhood's
    violent share x its own recency-weighted all-incident rate (see the module)."""
    ends = np.asarray(ends, np.int64)
    crime = history.crime.astype(np.float64)
    incidents = history.incidents.astype(np.float64)
    last = int(ends.max()) + 1
    vs, w = _decayed_sums(crime[:last], choice["half_life"])
    ins, _ = _decayed_sums(incidents[:last], choice["half_life"])
    zero = np.zeros((1, *crime.shape[1:]))
    cum = np.concatenate([zero, np.cumsum(crime[:last], axis=0)])
    inc_cum = np.concatenate([zero, np.cumsum(incidents[:last], axis=0)])
    share = _local_share(cum[ends + 1], inc_cum[ends + 1])
    prior = share * _smooth(ins[ends] / w[ends, None, None], choice["bandwidth"])
    return _recent_rate(vs[ends], w[ends], prior, choice["strength"])


#: Booster forecasts and single-window inputs already made, by window (see
#: :func:`window_keys`): the weekly run and the backtest forecast the same windows
#: again and again (the champion decision, the dispersion's 13 past weeks).
_BOOSTED: OrderedDict[tuple, np.ndarray] = OrderedDict()
_INPUTS: OrderedDict[tuple, dict[str, np.ndarray]] = OrderedDict()
BOOSTED_SIZE = 1024
INPUTS_SIZE = 64


def _remember(cache: OrderedDict, key: tuple, value: Any, size: int) -> Any:
    cache[key] = value
    while len(cache) > size:
        cache.popitem(last=False)
    return value


def window_keys(history: GridHistory, ends: np.ndarray) -> list[tuple]:
    """A key per window ending at each index in ``ends``: the first and last week, the
    grid, and checksums of every week's grids up to it (a late report that changes
    any of those weeks changes the key; later weeks do not enter it)."""
    n = len(history)
    weights = np.arange(1, history.crime[0].size + 1, dtype=np.float64)
    per_week = np.stack(
        [
            history.crime.reshape(n, -1) @ weights,
            history.incidents.reshape(n, -1) @ weights,
            history.weather.reshape(n, -1, history.weather.shape[-1]).sum(axis=1).sum(axis=1),
            np.asarray(history.nibrs_share, np.float64),
        ],
        axis=1,
    )
    checksums = np.cumsum(per_week, axis=0)
    first = history.week(0)
    return [
        (first, history.week(int(t)), history.shape, tuple(np.round(checksums[int(t)], 3)))
        for t in np.asarray(ends, np.int64)
    ]


def booster_rates(history: GridHistory, ends: np.ndarray, horizon: int) -> np.ndarray:
    """(n, rows, cols) the ``lgbm`` baseline's forecast from the weeks up to each end.

    Each forecast is the baseline's own (:mod:`crimejob.models.forecasters.gbm`: fitted on
    the weeks up to the calendar anchor at or before the end, refitted every 13
    weeks, its boosters shared process-wide), so a training window's booster
    rate is out of sample for its target exactly as in production. Forecasts are
    kept by window (:func:`window_keys`).
    """
    from crimejob.models.forecasters.gbm import LightGBMForecaster

    ends = np.asarray(ends, np.int64)
    forecaster = LightGBMForecaster(horizon=horizon)
    out = np.empty((len(ends), *history.shape), np.float64)
    for n, (t, key) in enumerate(zip(ends, window_keys(history, ends), strict=True)):
        key = (*key, horizon)
        if key not in _BOOSTED:
            rates = forecaster.predict(history.select(slice(0, int(t) + 1)))
            _remember(_BOOSTED, key, rates, BOOSTED_SIZE)
        out[n] = _BOOSTED[key]
    return out


def rate_inputs(
    history: GridHistory,
    ends: np.ndarray,
    horizon: int,
    bandwidth: float = 1.5,
    prior_strength: float = 2.0,
    offset_kind: str = "recent",
    booster: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(offset, maps) for windows ending at each index in ``ends``, from weeks <= t only.

    offset: (n, rows, cols) the rate the network corrects: ``"recent"`` (default)
    the recency-weighted rate of :func:`recent_offset`, its options chosen by
    :func:`choose_offset` on the weeks up to the newest end; ``"longrun"`` the
    all-history empirical-Bayes rate (the first design, kept for the ablation);
    ``"blend"`` the mean of the recent rate and ``booster`` ((n, rows, cols), the
    gradient-boosted baseline's forecasts from the same windows, see
    :func:`booster_rates`). maps: (n, rows, cols, len(MAP_FEATURES)), the
    channels listed in :data:`MAP_FEATURES` (``log_longrun`` is the all-history
    rate whatever the offset; ``log_booster`` the booster's forecast, or the
    recent rate when none is given).
    """
    if offset_kind not in OFFSET_KINDS:
        raise ValueError(f"offset_kind must be one of {OFFSET_KINDS}, got {offset_kind!r}")
    if offset_kind == "blend" and booster is None:
        raise ValueError("offset_kind 'blend' needs the booster's forecasts")
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
    longrun = offset
    seen = history.select(slice(0, int(ends.max()) + 1))
    recent = recent_offset(history, ends, choose_offset(seen))
    booster = recent if booster is None else np.asarray(booster, np.float64)
    if offset_kind == "recent":
        offset = recent
    elif offset_kind == "blend":
        offset = 0.5 * (recent + booster)

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
        log(longrun),
        log(booster),
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
    """mu = offset * exp(scale * clip(delta)): the learned multiplicative correction of
    the offset, shrunk by ``scale`` (a non-trainable weight: 1 while training, the
    held-out gate's choice when forecasting; 0 = the offset alone).

    ``evidence`` (saved in the layer's config, so a reloaded version keeps it) holds the
    gate's out-of-sample record: per target week, the mean Poisson deviance of the
    correction at each of :data:`CORRECTION_SCALES`.
    """

    def __init__(
        self,
        max_delta: float = 4.0,
        evidence: dict[str, list[float]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.max_delta = float(max_delta)
        self.evidence = {str(k): [float(x) for x in v] for k, v in (evidence or {}).items()}

    def build(self, input_shape: Any) -> None:
        self.scale = self.add_weight(
            shape=(), initializer="ones", trainable=False, name="scale", dtype="float32"
        )

    def call(self, inputs):
        offset, delta = inputs
        delta = ops.clip(ops.cast(delta, "float32"), -self.max_delta, self.max_delta)
        return ops.cast(offset, "float32") * ops.exp(ops.cast(self.scale, "float32") * delta)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "max_delta": self.max_delta, "evidence": self.evidence}


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
            "offset": "blend",  # "recent" (the shrunk rate alone) or "longrun" (the first design)
            "incident_channel": True,  # all-incident counts as an input channel
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
            "gate_weeks": 13,  # newest validation windows held out of early stopping
            "gate_memory": 26,  # newest target weeks of gate evidence the scale is chosen on
        }

    # --- the gate: keep the learned correction only where it pays on unseen weeks ---

    def _rate_layer(self) -> CorrectedRate:
        return self.model.get_layer("rate")

    def gate_rows(self, history: GridHistory, ends: np.ndarray) -> dict[str, list[float]]:
        """Per window ending at each index in ``ends``: its target week and the mean
        Poisson deviance (all cells, as scored) of ``offset * exp(a * delta)`` for each
        ``a`` in :data:`CORRECTION_SCALES`, with the current weights."""
        ends = np.asarray(ends, np.int64)
        inputs = self.model_inputs(history, ends)
        layer = self._rate_layer()
        chosen = float(ops.convert_to_numpy(layer.scale))
        layer.scale.assign(1.0)
        try:
            mu = np.asarray(self.model.predict_on_batch(inputs), np.float64)[..., 0]
        finally:
            layer.scale.assign(chosen)
        offset = np.asarray(inputs["offset"], np.float64)[..., 0]
        positive = (offset > 0) & (mu > 0)
        delta = np.where(
            positive, np.log(np.where(positive, mu, 1.0) / np.where(positive, offset, 1.0)), 0.0
        )
        actual = history.crime[ends + self.horizon]
        rows = {}
        for n, t in enumerate(ends):
            week = history.week(int(t) + self.horizon).isoformat()
            rows[week] = [
                float(poisson_deviance_per_cell(offset[n] * np.exp(a * delta[n]), actual[n]).mean())
                for a in CORRECTION_SCALES
            ]
        return rows

    def _decide(self, report: FitReport) -> float:
        """Set the correction's scale to the one with the lowest deviance over the newest
        ``gate_memory`` weeks of evidence (ties and no evidence: the offset alone) and
        record the decision in ``report.details``."""
        layer = self._rate_layer()
        weeks = sorted(layer.evidence)[-int(self.hp["gate_memory"]) :]
        layer.evidence = {w: layer.evidence[w] for w in weeks}
        scale, means = 0.0, {}
        if weeks:
            table = np.array([layer.evidence[w] for w in weeks], np.float64)
            totals = table.mean(axis=0)
            scale = float(CORRECTION_SCALES[int(np.argmin(totals))])
            means = {
                f"{a:g}": round(float(m), 6) for a, m in zip(CORRECTION_SCALES, totals, strict=True)
            }
        layer.scale.assign(scale)
        report.details = {
            "correction_scale": scale,
            "gate_weeks": len(weeks),
            "gate_first_target": weeks[0] if weeks else None,
            "gate_last_target": weeks[-1] if weeks else None,
            "gate_deviance_by_scale": means,
        }
        return scale

    @property
    def correction_scale(self) -> float:
        """The shrinkage the gate chose (0: the forecast is the offset alone)."""
        return float(ops.convert_to_numpy(self._rate_layer().scale))

    def fit(self, history: GridHistory) -> FitReport:
        """Retrain; the newest ``gate_weeks`` validation windows (at most half of them)
        are kept out of early stopping and choose the correction's scale.

        Why: trained on top of a strong offset (the blend) the correction did not
        always pay for itself; early stopping's windows would flatter it (the best
        epoch is chosen on them), so the gate uses windows nothing was fitted to. The
        weights stay those fitted before the gate (no refit on every window): the
        scale is validated for exactly these weights, and the validation weeks are
        what the weekly gate in :mod:`crimejob.models.training` relies on being unseen.
        """
        history = self.prepared(history)
        train, val = self._retrain_split(history)
        n_gate = min(int(self.hp["gate_weeks"]), len(val) // 2)
        stop_on, gate = val[: len(val) - n_gate], val[len(val) - n_gate :]
        seed_everything(int(self.hp["seed"]))
        self.model = self.build_model(history, train)
        self._compiled = False
        report = self._train(
            history, train, stop_on, int(self.hp["epochs"]), float(self.hp["learning_rate"]),
            "retrain",
        )  # fmt: skip
        report.validation_targets = _week_dates(history, val + self.horizon)
        self._rate_layer().evidence = self.gate_rows(history, gate) if len(gate) else {}
        self._decide(report)
        return report

    def update(self, history: GridHistory) -> FitReport:
        """Fine-tune, after scoring the current weights on the newest target week (one
        no fit or fine-tune has seen, not even for early stopping) as new gate
        evidence; then re-choose the scale on the newest ``gate_memory`` weeks."""
        if self.model is None:
            return self.fit(history)
        prepared = self.prepared(history)
        ends = window_ends(len(prepared), int(self.hp["window"]), self.horizon)
        layer = self._rate_layer()
        in_force, newest = self.correction_scale, {}
        if len(ends):
            rows = self.gate_rows(prepared, ends[-1:])
            layer.evidence.update(rows)
            ((week, row),) = rows.items()
            # The forecast these weights made for the newest week, against the offset
            # alone: a prequential record of what the gate's choice bought.
            newest = {
                "newest_target": week,
                "newest_deviance_offset": row[0],
                "newest_deviance_forecast": row[CORRECTION_SCALES.index(in_force)]
                if in_force in CORRECTION_SCALES
                else None,
            }
        layer.scale.assign(1.0)  # the correction is trained as itself
        report = super().update(history)
        self._decide(report)
        report.details.update(newest)
        return report

    def loss(self):
        return keras.losses.Poisson()

    def model_inputs(self, history: GridHistory, ends: np.ndarray) -> dict[str, np.ndarray]:
        ends = np.asarray(ends)
        if len(ends) != 1:
            return self._model_inputs(history, ends)
        config = tuple(
            str(self.hp[k])
            for k in ("window", "bandwidth", "prior_strength", "offset", "incident_channel")
        )
        key = (*window_keys(history, ends)[0], self.horizon, config)
        if key not in _INPUTS:
            _remember(_INPUTS, key, self._model_inputs(history, ends), INPUTS_SIZE)
        return _INPUTS[key]

    def _model_inputs(self, history: GridHistory, ends: np.ndarray) -> dict[str, np.ndarray]:
        window = int(self.hp["window"])
        kind = str(self.hp["offset"])
        # The booster reads the history as recorded (it learns the 2024 switch from
        # the NIBRS share); the rates and counts are read at the recording level of
        # the newest window's series, so the switch is not read as a change in crime.
        booster = booster_rates(history, ends, self.horizon) if kind == "blend" else None
        history = rescale_to_current_series(history.select(slice(0, int(ends.max()) + 1)))
        offset, maps = rate_inputs(
            history,
            ends,
            self.horizon,
            float(self.hp["bandwidth"]),
            float(self.hp["prior_strength"]),
            kind,
            booster,
        )
        share = history.crime.sum() / max(float(history.incidents.sum()), 1e-9)
        incidents = stack_windows(history.incidents, ends, window)
        if not self.hp["incident_channel"]:  # the ablation: the channel carries nothing
            incidents = np.zeros_like(incidents)
        counts = np.stack([stack_windows(history.crime, ends, window), share * incidents], axis=-1)
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
        maps = self.model_inputs(history, np.asarray(train_ends))["maps"]
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
