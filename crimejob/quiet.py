"""Keep TensorFlow's start-up noise out of the job's output unless asked for.

TensorFlow's C++ runtime writes to file descriptor 2 while it loads and probes
for devices ("oneDNN custom operations are on", "Could not find cuda drivers",
"failed call to cuInit", absl's "All log messages before absl::InitializeLog()"),
partly before ``TF_CPP_MIN_LOG_LEVEL`` is read. :func:`quiet_backend` runs such a
step with descriptor 2 pointed at /dev/null. ``crimejob -v`` (which sets
``CRIMEJOB_VERBOSE=1``) or ``CRIMEJOB_VERBOSE=1`` lets it all through.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from crimejob.config import VERBOSE_SETTING, get_settings

__all__ = ["VERBOSE_SETTING", "import_backend", "quiet_backend", "verbose"]


def verbose() -> bool:
    """``CRIMEJOB_VERBOSE`` (``crimejob -v``): let the backend's start-up messages through."""
    return get_settings().verbose


@contextmanager
def quiet_backend() -> Iterator[None]:
    """Silence descriptor 2 (C++ and Python alike) for the duration, unless verbose."""
    if verbose():
        yield
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no descriptor 2 to redirect (a detached process)
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def import_backend() -> None:
    """Import Keras and its backend quietly (first import only: later ones are free)."""
    if "keras" in sys.modules:
        return
    with quiet_backend():
        import keras  # noqa: F401
