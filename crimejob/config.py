"""Configuration from environment variables, read when asked for (never at import).

Every setting a user may change lives here, so tests can point the job at local
servers and a throwaway database by setting variables, and the DAG, the CLI and
the tests all see the same values.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent

DEFAULT_SODA_URL = "https://data.lacity.org"
DEFAULT_NCEI_URL = "https://www.ncei.noaa.gov/access/services/data/v1"


@dataclass(frozen=True)
class Station:
    """A GHCN-Daily station whose daily summaries feed the weather grid."""

    station_id: str
    name: str
    lat: float
    lon: float


# GHCN-Daily stations in and around Los Angeles (coordinates from the station
# inventory). LAX and Downtown/USC are required by the design notes.
DEFAULT_STATIONS: tuple[Station, ...] = (
    Station("USW00023174", "LOS ANGELES INTERNATIONAL AIRPORT, CA US", 33.9381, -118.3889),
    Station("USW00093134", "LOS ANGELES DOWNTOWN USC, CA US", 34.0236, -118.2911),
    Station("USW00023152", "BURBANK GLENDALE PASADENA AIRPORT, CA US", 34.2006, -118.3586),
    Station("USW00023130", "VAN NUYS AIRPORT, CA US", 34.2097, -118.4892),
    Station("USW00023129", "LONG BEACH DAUGHERTY FIELD, CA US", 33.8117, -118.1464),
)


@dataclass(frozen=True)
class CrimeDataset:
    """Which SODA dataset serves which report dates, and which series it belongs to.

    LAPD switched to NIBRS on 2024-03-07; legacy and NIBRS counts are different
    series, so every weekly row records the series it came from.
    """

    dataset_id: str
    kind: str  # "legacy" or "nibrs"
    reported_from: date
    reported_to: date | None  # exclusive; None = open-ended


DEFAULT_CRIME_DATASETS: tuple[CrimeDataset, ...] = (
    CrimeDataset("2nrs-mtv8", "legacy", date(2020, 1, 1), date(2024, 3, 7)),
    CrimeDataset("y8y3-fqfu", "nibrs", date(2024, 3, 7), date(2026, 1, 1)),
    CrimeDataset("k7nn-b2ep", "nibrs", date(2026, 1, 1), None),
)

SERIES_BREAK = date(2024, 3, 7)


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def _parse_stations(text: str) -> tuple[Station, ...]:
    """Parse ``ID:lat:lon[:name],...``; a bare ID picks a known station's coordinates."""
    known = {s.station_id: s for s in DEFAULT_STATIONS}
    stations = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        parts = item.split(":")
        if len(parts) == 1:
            if parts[0] not in known:
                raise ValueError(
                    f"station {parts[0]!r} has no known coordinates; write it as ID:lat:lon"
                )
            stations.append(known[parts[0]])
        elif len(parts) >= 3:
            name = parts[3] if len(parts) > 3 else parts[0]
            stations.append(Station(parts[0], name, float(parts[1]), float(parts[2])))
        else:
            raise ValueError(f"cannot parse station {item!r}; write it as ID or ID:lat:lon[:name]")
    return tuple(stations)


@dataclass(frozen=True)
class Settings:
    database_url: str | None
    data_dir: Path
    model_dir: Path
    soda_url: str
    soda_app_token: str | None
    ncei_url: str
    stations: tuple[Station, ...]
    crime_datasets: tuple[CrimeDataset, ...] = field(default=DEFAULT_CRIME_DATASETS)
    trailing_weeks: int = 8
    http_timeout_s: float = 60.0
    http_max_attempts: int = 6
    http_backoff_max_s: float = 60.0
    soda_page_size: int = 50_000


def get_settings() -> Settings:
    """Read the settings from the environment now (tests change it between calls)."""
    data_dir = Path(_env("CRIMEJOB_DATA_DIR", str(PROJECT_ROOT / ".crimejob")))
    stations_text = _env("CRIMEJOB_STATIONS")
    return Settings(
        database_url=_env("CRIMEJOB_DATABASE_URL"),
        data_dir=data_dir,
        model_dir=Path(_env("CRIMEJOB_MODEL_DIR", str(PROJECT_ROOT / "models"))),
        soda_url=_env("CRIMEJOB_SODA_URL", DEFAULT_SODA_URL).rstrip("/"),
        soda_app_token=_env("CRIMEJOB_SODA_APP_TOKEN") or _env("SODA_APP_TOKEN"),
        ncei_url=_env("CRIMEJOB_NCEI_URL", DEFAULT_NCEI_URL).rstrip("/"),
        stations=_parse_stations(stations_text) if stations_text else DEFAULT_STATIONS,
        trailing_weeks=int(_env("CRIMEJOB_TRAILING_WEEKS", "8")),
        http_timeout_s=float(_env("CRIMEJOB_HTTP_TIMEOUT", "60")),
        http_max_attempts=int(_env("CRIMEJOB_HTTP_MAX_ATTEMPTS", "6")),
        http_backoff_max_s=float(_env("CRIMEJOB_HTTP_BACKOFF_MAX", "60")),
        soda_page_size=int(_env("CRIMEJOB_SODA_PAGE_SIZE", "50000")),
    )
