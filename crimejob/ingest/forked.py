"""Run one function in a forked child process beside the caller, for CPU-bound work
that holds the interpreter (pandas building Python strings) and so gains nothing from
a thread.

``os.fork`` rather than ``multiprocessing``: the child starts in microseconds with the
parent's imports and data (copy-on-write), no module is imported again, and it works
inside daemonic processes (Celery's prefork workers), where ``multiprocessing``
refuses to start children. The child sends its result (or the exception it raised)
back pickled through a pipe, and leaves with ``os._exit``: it never runs the parent's
exit handlers and never touches the parent's open database connections.
"""

from __future__ import annotations

import os
import pickle
import signal
from collections.abc import Callable
from typing import Any


def available() -> bool:
    """Whether this platform can fork (POSIX)."""
    return hasattr(os, "fork")


class ChildFailed(RuntimeError):
    """The child ended without sending a result (killed, or out of memory)."""


class Forked:
    """``function(*args)`` running in a child process; ``result()`` waits for it.

    Use as a context manager: leaving the block early (an exception in the caller)
    kills the child and reaps it, so no process is left behind."""

    def __init__(self, function: Callable[..., Any], *args: Any) -> None:
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child
            code = 0
            try:
                os.close(read_end)
                try:
                    outcome: Any = ("ok", function(*args))
                except BaseException as exc:  # sent to the parent, which raises it
                    outcome = ("error", exc)
                try:
                    sent = pickle.dumps(outcome, protocol=pickle.HIGHEST_PROTOCOL)
                except Exception as exc:  # an exception that does not pickle, say
                    sent = pickle.dumps(("error", ChildFailed(f"the child's result: {exc!r}")))
                with os.fdopen(write_end, "wb") as pipe:
                    pipe.write(sent)
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        os.close(write_end)
        self.pid: int | None = pid
        self._pipe = os.fdopen(read_end, "rb")

    def result(self) -> Any:
        """The function's return value; its exception is raised here."""
        try:
            outcome = pickle.load(self._pipe)
        except (EOFError, pickle.UnpicklingError):
            self._reap()
            raise ChildFailed("the child process ended without a whole result") from None
        finally:
            self._pipe.close()
        self._reap()
        kind, value = outcome
        if kind == "error":
            raise value
        return value

    def _reap(self) -> None:
        if self.pid is not None:
            os.waitpid(self.pid, 0)
            self.pid = None

    def kill(self) -> None:
        """Stop the child if it still runs, and reap it."""
        if self.pid is not None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self._reap()
        if not self._pipe.closed:
            self._pipe.close()

    def __enter__(self) -> Forked:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.kill()
