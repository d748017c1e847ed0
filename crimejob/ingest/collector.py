"""Pause Python's cyclic garbage collector around a bulk import.

A million-row import makes millions of small objects that live to its end (the
memoryviews of the lines it sends, the pieces of each row). Each one counts towards
the collector's next pass, and the passes walk every tracked object again: at 1M rows
they took about a quarter of the encoding thread's time and found nothing to free, as
the import makes no reference cycles. Reference counting still frees everything the
moment it is dropped; only the search for cycles waits to the end of the import.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_holders = 0
_was_enabled = False


@contextmanager
def collector_paused() -> Iterator[None]:
    """The block runs with the cyclic collector off; its state is restored when the last
    of several overlapping blocks (in threads) ends, as it was before the first began."""
    global _holders, _was_enabled
    with _lock:
        if _holders == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _holders += 1
    try:
        yield
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0 and _was_enabled:
                gc.enable()
