"""The networks' Keras code runs unchanged under JAX and PyTorch, not only TensorFlow.

One subprocess per backend (the backend is chosen when Keras is first imported) fits
and forecasts with each of our networks: starting a process and importing a backend
costs more than a one-epoch fit, so both networks share it.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

NETWORKS = ("rate_cnn", "sparse_cnn")

CODE = """
import sys
import keras
import numpy as np
from crimejob.devworld import la_world
from crimejob.models.forecasters import get_forecaster
assert keras.backend.backend() == sys.argv[1], keras.backend.backend()
h = la_world(seed=1, weeks=20).history()
for name in sys.argv[2:]:
    f = get_forecaster(name, epochs=1, max_train_windows=2)
    f.fit(h)
    p = f.predict(h)
    assert p.shape == (60, 75) and np.all(p >= 0), name
    print("ok", name)
"""


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_the_same_code_runs_under_another_keras_backend(backend):
    pytest.importorskip(backend)
    env = {**os.environ, "KERAS_BACKEND": backend}
    done = subprocess.run(
        [sys.executable, "-c", CODE, backend, *NETWORKS],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split("\n")[-len(NETWORKS) - 1 : -1] == [f"ok {n}" for n in NETWORKS]
