"""The local HTTP server with scripted faults (now in the package: ``crimejob.devservers.http``)."""

from crimejob.devservers.http import FakeHandler, FakeServer, Fault

__all__ = ["Fault", "FakeHandler", "FakeServer"]
