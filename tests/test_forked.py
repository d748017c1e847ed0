"""A function run in a forked child process (crimejob.ingest.forked): what the CSV import
uses to map half of a large export beside the other half.

What must hold: the child's result or exception comes back to the parent; a child that
dies, or whose result cannot be sent, is a clear failure, never a hang; no child is
left running or unreaped, whatever the parent does.
"""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest

from crimejob.ingest import forked

pytestmark = pytest.mark.skipif(not forked.available(), reason="needs os.fork")


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_the_childs_result_comes_back():
    with forked.Forked(np.arange, 1_000_000) as child:
        pid = child.pid
        assert (child.result() == np.arange(1_000_000)).all()
    assert pid != os.getpid() and _gone(pid)


def test_the_childs_exception_is_raised_in_the_parent():
    with forked.Forked(int, "not a number") as child, pytest.raises(ValueError, match="not a"):
        child.result()


def test_a_child_that_dies_is_a_clear_failure():
    with forked.Forked(os._exit, 3) as child, pytest.raises(forked.ChildFailed):
        child.result()


class _Unpicklable(Exception):
    def __reduce__(self):
        raise TypeError("this exception does not pickle")


def _raise_unpicklable():
    raise _Unpicklable("no")


def test_a_result_that_cannot_be_sent_is_a_clear_failure():
    with forked.Forked(_raise_unpicklable) as child:
        with pytest.raises(forked.ChildFailed, match="does not pickle"):
            child.result()


def test_leaving_early_kills_and_reaps_the_child():
    with pytest.raises(RuntimeError, match="the parent failed"):
        with forked.Forked(time.sleep, 60) as child:
            pid = child.pid
            raise RuntimeError("the parent failed")
    assert _gone(pid)


def test_the_parent_keeps_its_threads_and_state():
    """The child works on a copy: what it changes stays in the child."""
    seen: list[int] = []
    ticker = threading.Thread(target=lambda: seen.append(1))
    ticker.start()
    with forked.Forked(seen.append, 2) as child:
        child.result()
    ticker.join()
    assert seen == [1]
