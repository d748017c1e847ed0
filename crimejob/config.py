"""Configuration from environment variables, read when asked for (never at import).

Every setting a user may change lives here, so tests can point the job at local
servers and a throwaway database by setting variables, and the DAG, the CLI and
the tests all see the same values.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from crimejob.errors import ConfigError

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
# inventory). LAX and Downtown/USC cover the coast and the centre; the others the valleys
# and the south, so every cell has a station within reach.
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
    series, so every record and every weekly row records the series it came from.
    """

    dataset_id: str
    kind: str  # "legacy" or "nibrs"
    reported_from: date
    reported_to: date | None  # exclusive; None = open-ended


SERIES_BREAK = date(2024, 3, 7)
LEGACY_LAST_REPORT = date(2025, 3, 28)  # the frozen legacy dataset's last report date

# Every LAPD dataset the job can read, with the report dates it serves (as of late 2026):
# - 2nrs-mtv8, legacy "Crime Data from 2020 to Present": frozen; reports up to 2025-03-28
#   (occurrences end 2024-12-30). It tapers off through 2024 as NIBRS ramps up.
# - k7nn-b2ep, NIBRS offenses: since the merge of 2026-08-18 it holds every NIBRS report
#   from 2024-03-07 on, and is the one live dataset.
# - y8y3-fqfu, NIBRS 2024-2025: frozen on 2026-08-18 and closed (HTTP 403) since; its
#   rows are in k7nn-b2ep. Read only when configured (an old mirror, say).
KNOWN_CRIME_DATASETS: dict[str, CrimeDataset] = {
    ds.dataset_id: ds
    for ds in (
        CrimeDataset(
            "2nrs-mtv8", "legacy", date(2020, 1, 1), LEGACY_LAST_REPORT + timedelta(days=1)
        ),
        CrimeDataset("k7nn-b2ep", "nibrs", SERIES_BREAK, None),
        CrimeDataset("y8y3-fqfu", "nibrs", SERIES_BREAK, date(2026, 8, 18)),
    )
}

# 2024-03-07..2025-03-28 is covered by both series: each record keeps its own.
DEFAULT_CRIME_DATASETS: tuple[CrimeDataset, ...] = (
    KNOWN_CRIME_DATASETS["2nrs-mtv8"],
    KNOWN_CRIME_DATASETS["k7nn-b2ep"],
)
CRIME_DATASETS_SETTING = "CRIMEJOB_CRIME_DATASETS"
PUBLICATION_LAG_SETTING = "CRIMEJOB_PUBLICATION_LAG_DAYS"
VERBOSE_SETTING = "CRIMEJOB_VERBOSE"
DEFAULT_HISTORY_WEEKS = 104


def _parse_crime_datasets(text: str) -> tuple[CrimeDataset, ...]:
    """Parse ``ID[:FIRST[:LAST]],...``: the datasets to read and, optionally, the report
    dates each serves (FIRST..LAST inclusive, ISO dates; an empty LAST is open-ended).
    A bare ID serves its known range (:data:`KNOWN_CRIME_DATASETS`)."""
    datasets = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        dataset_id, *bounds = (p.strip() for p in item.split(":"))
        known = KNOWN_CRIME_DATASETS.get(dataset_id)
        if known is None:
            raise ConfigError(
                f"{CRIME_DATASETS_SETTING}: {dataset_id!r} is not an LAPD dataset the job "
                f"can read ({', '.join(KNOWN_CRIME_DATASETS)})"
            )
        if len(bounds) > 2:
            raise ConfigError(
                f"{CRIME_DATASETS_SETTING}: cannot parse {item!r}; write ID or ID:FIRST:LAST"
            )
        try:
            first = date.fromisoformat(bounds[0]) if bounds and bounds[0] else known.reported_from
            to = known.reported_to
            if len(bounds) == 2:
                to = date.fromisoformat(bounds[1]) + timedelta(days=1) if bounds[1] else None
        except ValueError as exc:
            raise ConfigError(f"{CRIME_DATASETS_SETTING}: bad date in {item!r}: {exc}") from None
        datasets.append(CrimeDataset(dataset_id, known.kind, first, to))
    if not datasets:
        raise ConfigError(f"{CRIME_DATASETS_SETTING} names no dataset")
    return tuple(datasets)


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
    # Days from a report to its publication on the portal (measured: 12-14): weeks whose
    # reports are not all published by the run are not used as history (see crimejob.grid.lag).
    publication_lag_days: int = 14
    # The weekly champion decision (crimejob.models.champion): the newest K complete weeks no
    # contender was fitted to, at least this many for a network version to take part, and
    # how many standard errors a challenger must beat the incumbent by.
    champion_weeks: int = 8
    champion_min_weeks: int = 4
    champion_margin_se: float = 1.0
    # The Airflow extract tasks' retries: a source still down after them fails the run.
    extract_retries: int = 3
    extract_retry_minutes: float = 10.0
    # Weeks of the feedback-loop simulation in a model card (crimejob.serving.cards); the
    # tests shorten it, the card says how many weeks it ran.
    card_feedback_weeks: int = 26
    # The weekly job: how many weeks of history a first run loads (None: not set, the job's
    # default DEFAULT_HISTORY_WEEKS; the demo has a smaller default of its own), and below
    # what share of the trailing median the newest complete week stops the run.
    history_weeks_setting: int | None = None
    completeness_ratio: float = 0.5
    # The network the weekly job trains (None: not set, crimejob.models.forecasters'
    # default), and JSON overrides of hyperparameters (the weekly job, `crimejob train`) and
    # of per-model budgets (`crimejob backtest`); parsed where they are used.
    model: str | None = None
    hyperparameters: str | None = None
    backtest_overrides: str | None = None
    # Train on the CPU even where the backend sees a GPU; let TensorFlow's noise through.
    force_cpu: bool = False
    verbose: bool = False

    @property
    def history_weeks(self) -> int:
        """Weeks of grid history a first run loads (``CRIMEJOB_HISTORY_WEEKS``, 104)."""
        return self.history_weeks_setting or DEFAULT_HISTORY_WEEKS


def get_settings() -> Settings:
    """Read the settings from the environment now (tests change it between calls)."""
    data_dir = Path(_env("CRIMEJOB_DATA_DIR", str(PROJECT_ROOT / ".crimejob")))
    stations_text = _env("CRIMEJOB_STATIONS")
    datasets_text = _env(CRIME_DATASETS_SETTING)
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
        crime_datasets=_parse_crime_datasets(datasets_text)
        if datasets_text
        else DEFAULT_CRIME_DATASETS,
        publication_lag_days=_lag_days(_env(PUBLICATION_LAG_SETTING, "14")),
        champion_weeks=_positive_int("CRIMEJOB_CHAMPION_WEEKS", "8"),
        champion_min_weeks=_positive_int("CRIMEJOB_CHAMPION_MIN_WEEKS", "4"),
        champion_margin_se=_non_negative_float("CRIMEJOB_CHAMPION_MARGIN_SE", "1"),
        extract_retries=int(_env("CRIMEJOB_EXTRACT_RETRIES", "3")),
        extract_retry_minutes=float(_env("CRIMEJOB_EXTRACT_RETRY_MINUTES", "10")),
        card_feedback_weeks=_positive_int("CRIMEJOB_CARD_FEEDBACK_WEEKS", "26"),
        history_weeks_setting=(
            _positive_int("CRIMEJOB_HISTORY_WEEKS", "1") if _env("CRIMEJOB_HISTORY_WEEKS") else None
        ),
        completeness_ratio=_non_negative_float("CRIMEJOB_COMPLETENESS_RATIO", "0.5"),
        model=_env("CRIMEJOB_MODEL"),
        hyperparameters=(_env("CRIMEJOB_HYPERPARAMETERS") or "").strip() or None,
        backtest_overrides=_env("CRIMEJOB_BACKTEST_OVERRIDES"),
        force_cpu=_env("CRIMEJOB_FORCE_CPU") == "1",
        verbose=_env(VERBOSE_SETTING, "0") != "0",
    )


def _positive_int(name: str, default: str) -> int:
    text = _env(name, default)
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, not {text!r}") from None
    if value < 1:
        raise ConfigError(f"{name} must be at least 1, not {value}")
    return value


def _non_negative_float(name: str, default: str) -> float:
    text = _env(name, default)
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"{name} must be a number, not {text!r}") from None
    if not value >= 0:
        raise ConfigError(f"{name} must be 0 or more, not {text!r}")
    return value


def _lag_days(text: str) -> int:
    try:
        days = int(text)
    except ValueError:
        raise ConfigError(
            f"{PUBLICATION_LAG_SETTING} must be a whole number of days, not {text!r}"
        ) from None
    if not 0 <= days <= 365:
        raise ConfigError(f"{PUBLICATION_LAG_SETTING} must be between 0 and 365 days, not {days}")
    return days
