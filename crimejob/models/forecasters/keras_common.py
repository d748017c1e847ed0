"""What every Keras forecaster shares: windows, the fit loop, devices, artifacts.

Pure Keras 3 (``keras.layers``, ``keras.ops``): the models run on the
TensorFlow backend by default and under ``KERAS_BACKEND=jax`` or ``torch``
unchanged. On a GPU the global dtype policy is ``mixed_float16`` (output
layers stay float32) and the larger ``gpu_batch_size`` is used; on a CPU
everything is float32, seeded with ``keras.utils.set_random_seed`` and, on
TensorFlow, op determinism is switched on, so a CPU fit is repeatable.

Windows: a sample is "the ``window`` weeks ending at week index t" as input
and the counts of week t+horizon as target. Validation is always the newest
targets (time-ordered, never shuffled into training); training samples are
shuffled among themselves only. A retrain validates on the newest 20% of
targets; a fine-tune trains on the ``finetune_windows`` targets before the
newest ``finetune_validation_weeks`` and stops early on those. So the
weights lag the data by the validation weeks, while every forecast's inputs
still end with the newest week; the gate in :mod:`crimejob.models.training` relies
on those weeks being unseen.
"""

from __future__ import annotations

import abc
import logging
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from crimejob.config import get_settings
from crimejob.errors import DataError
from crimejob.grid.history import GridHistory
from crimejob.models.forecasters.base import FitReport, Forecaster

log = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def on_gpu() -> bool:
    """Whether the active Keras backend sees a GPU (``CRIMEJOB_FORCE_CPU=1`` says no)."""
    if get_settings().force_cpu:
        return False
    from crimejob.quiet import import_backend, quiet_backend

    import_backend()
    import keras

    backend = keras.config.backend()
    try:
        if backend == "tensorflow":
            import tensorflow as tf

            with quiet_backend():  # the device probe: "cuInit", "Could not find cuda drivers"
                return bool(tf.config.list_physical_devices("GPU"))
        if backend == "jax":
            import jax

            return any(d.platform == "gpu" for d in jax.devices())
        if backend == "torch":
            import torch

            return bool(torch.cuda.is_available())
    except Exception:  # a broken accelerator set-up falls back to the CPU
        log.warning("could not query the %s backend for a GPU; using the CPU", backend)
    return False


@lru_cache(maxsize=1)
def configure_keras() -> str:
    """Set the dtype policy (mixed precision on GPU) and determinism once per process."""
    import keras

    if on_gpu():
        keras.mixed_precision.set_dtype_policy("mixed_float16")
        return "gpu"
    keras.mixed_precision.set_dtype_policy("float32")
    if keras.config.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    return "cpu"


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and the backend: same seed, same weights, same fit on CPU."""
    import keras

    configure_keras()
    keras.utils.set_random_seed(int(seed))


def window_ends(n_weeks: int, window: int, horizon: int = 1) -> np.ndarray:
    """Week indices t that end a full input window and have a target week t+horizon."""
    return np.arange(window - 1, n_weeks - horizon)


def stack_windows(grids: np.ndarray, ends: np.ndarray, window: int) -> np.ndarray:
    """``grids[t-window+1 : t+1]`` for each t in ``ends``: (n, window, ...) without a loop."""
    offsets = np.arange(-window + 1, 1)
    return grids[np.asarray(ends)[:, None] + offsets[None, :]]


def trailing_mean(grids: np.ndarray, ends: np.ndarray, weeks: int) -> np.ndarray:
    """Mean of ``grids`` over the ``weeks`` weeks ending at each t in ``ends`` (fewer early)."""
    cumulative = np.concatenate([np.zeros_like(grids[:1], np.float64), np.cumsum(grids, 0)])
    ends = np.asarray(ends)
    first = np.maximum(ends + 1 - weeks, 0)
    counts = (ends + 1 - first).reshape((-1,) + (1,) * (grids.ndim - 1))
    return ((cumulative[ends + 1] - cumulative[first]) / counts).astype(np.float32)


def _week_dates(history: GridHistory, indices: np.ndarray) -> list:
    return [history.week_starts[i].astype("datetime64[D]").item() for i in indices]


class KerasForecaster(Forecaster):
    """A forecaster backed by one Keras model; subclasses define inputs and architecture."""

    trainable = True

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
            "min_validation_weeks": 4,
            "patience": 5,
            "max_train_windows": None,  # None = every window the history allows
            "finetune_epochs": 5,
            "finetune_windows": 26,
            "finetune_validation_weeks": 4,
            "finetune_learning_rate": 3e-4,
            "seed": 42,
        }

    def __init__(self, **hyperparameters: Any) -> None:
        super().__init__(**hyperparameters)
        self.model = None
        self._compiled = False
        self.min_history = int(self.hp["window"])

    # --- what a subclass provides ---------------------------------------------

    @abc.abstractmethod
    def build_model(self, history: GridHistory, train_ends: np.ndarray):
        """A fresh, uncompiled keras.Model (``history``/``train_ends`` for input statistics)."""

    @abc.abstractmethod
    def model_inputs(self, history: GridHistory, ends: np.ndarray) -> dict[str, np.ndarray]:
        """The model's named inputs for windows ending at each index in ``ends``."""

    @abc.abstractmethod
    def loss(self):
        """The Keras loss the model is trained with."""

    # --- the shared fit loop --------------------------------------------------

    @property
    def batch_size(self) -> int:
        return int(self.hp["gpu_batch_size"] if on_gpu() else self.hp["batch_size"])

    def _retrain_split(self, history: GridHistory) -> tuple[np.ndarray, np.ndarray]:
        """A retrain's training and validation windows: the newest ``validation_fraction``
        of the targets (at least ``min_validation_weeks``) validate."""
        n_windows = len(window_ends(len(history), int(self.hp["window"]), self.horizon))
        n_val = max(
            int(self.hp["min_validation_weeks"]),
            int(round(float(self.hp["validation_fraction"]) * n_windows)),
        )
        return self._split(history, n_val, self.hp["max_train_windows"])

    def _split(
        self, history: GridHistory, n_val: int, max_train: int | None
    ) -> tuple[np.ndarray, np.ndarray]:
        ends = window_ends(len(history), int(self.hp["window"]), self.horizon)
        if len(ends) < n_val + 1:
            raise DataError(
                f"{self.name} needs at least "
                f"{int(self.hp['window']) + n_val + self.horizon} weeks of "
                f"history to train and validate, got {len(history)}"
            )
        train, val = ends[:-n_val], ends[-n_val:]
        if max_train:
            train = train[-int(max_train) :]
        return train, val

    def fit(self, history: GridHistory) -> FitReport:
        """Full retrain from fresh weights; validation = the newest 20% of targets."""
        history = self.prepared(history)
        train, val = self._retrain_split(history)
        seed_everything(int(self.hp["seed"]))
        self.model = self.build_model(history, train)
        self._compiled = False
        return self._train(
            history,
            train,
            val,
            int(self.hp["epochs"]),
            float(self.hp["learning_rate"]),
            "retrain",
        )

    def update(self, history: GridHistory) -> FitReport:
        """Fine-tune the current weights on the newest windows (a retrain if there are none)."""
        if self.model is None:
            return self.fit(history)
        history = self.prepared(history)
        train, val = self._split(
            history, int(self.hp["finetune_validation_weeks"]), int(self.hp["finetune_windows"])
        )
        seed_everything(int(self.hp["seed"]) + len(history))
        return self._train(
            history,
            train,
            val,
            int(self.hp["finetune_epochs"]),
            float(self.hp["finetune_learning_rate"]),
            "finetune",
        )

    def _train(
        self,
        history: GridHistory,
        train: np.ndarray,
        val: np.ndarray,
        epochs: int,
        learning_rate: float,
        mode: str,
    ) -> FitReport:
        import keras

        started = time.perf_counter()
        report = FitReport(
            mode=mode,
            train_targets=_week_dates(history, train + self.horizon),
            validation_targets=_week_dates(history, val + self.horizon),
        )
        if epochs <= 0:
            return report
        if self._compiled:
            # Keep the compiled train/predict functions: recompiling retraces them,
            # which costs more than a weekly fine-tune of rate_cnn itself.
            self.model.optimizer.learning_rate = learning_rate
        else:
            self.model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=self.loss())
            self._compiled = True
        stopper = keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=int(self.hp["patience"]), restore_best_weights=True
        )
        fitted = self.model.fit(
            self.model_inputs(history, train),
            history.crime[train + self.horizon][..., None],
            validation_data=(
                self.model_inputs(history, val),
                history.crime[val + self.horizon][..., None],
            ),
            epochs=epochs,
            batch_size=self.batch_size,
            shuffle=True,
            callbacks=[stopper],
            verbose=0,
        )
        val_losses = fitted.history.get("val_loss", [])
        report.epochs_run = len(val_losses)
        report.best_val_loss = float(np.min(val_losses)) if val_losses else None
        report.seconds = time.perf_counter() - started
        log.info("%s %s: %s", self.name, mode, report.as_dict())
        return report

    # --- predicting and artifacts ---------------------------------------------

    def _predict(self, history: GridHistory) -> np.ndarray:
        if self.model is None:
            raise DataError(f"{self.name} has not been fitted or loaded")
        inputs = self.model_inputs(history, np.array([len(history) - 1]))
        return np.asarray(self.model.predict_on_batch(inputs), np.float32)[0, ..., 0]

    def count_params(self) -> int:
        if self.model is None:
            raise DataError(f"{self.name} has no model built yet")
        return int(self.model.count_params())

    def save(self, path: Path) -> Path:
        """Write the model (architecture, weights, input statistics) as one ``.keras`` file."""
        if self.model is None:
            raise DataError(f"{self.name} has no model to save")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.model.save(path)
        return path

    def load(self, path: Path) -> KerasForecaster:
        import keras

        configure_keras()
        self.model = keras.saving.load_model(Path(path), compile=False)
        self._compiled = False
        return self
