"""The local NCEI Access Data Service (now in the package: ``crimejob.devservers.ncei``)."""

from crimejob.devservers.ncei import (
    DATA_TYPES,
    ELEVATION,
    PATH,
    FakeNcei,
    NceiApp,
    daily_values,
    make_daily_summaries,
    ncei_server,
    to_csv,
)

__all__ = [
    "DATA_TYPES", "ELEVATION", "PATH", "FakeNcei", "NceiApp", "daily_values",
    "make_daily_summaries", "ncei_server", "to_csv",
]  # fmt: skip
