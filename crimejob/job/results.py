"""What each step of the weekly job returns: one typed result per step.

A result is what the run prints (:meth:`StepResult.summary`), what ``ops.runs.counts``
records under the step's name (:meth:`StepResult.as_dict`), and what a later step
reads: in ``crimejob run`` from memory, in an Airflow run (each task a process of its
own) back from that record (:meth:`StepResult.from_dict`). So a field is named once,
here, and read by attribute.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from datetime import date
from typing import Any, ClassVar


@dataclass(frozen=True)
class StepResult:
    """Base of the step results: JSON out (dates as ISO text) and back."""

    def as_dict(self) -> dict[str, Any]:
        return {f.name: _encode(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        """The result recorded as ``data``; keys it does not name are left out."""
        hints = typing.get_type_hints(cls)
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: _decode(hints[k], v) for k, v in data.items() if k in names})

    def summary(self) -> str:
        return ""


def _encode(value: Any) -> Any:
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _encode(v) for k, v in value.items()}
    return value


def _decode(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        return _decode(inner[0], value) if len(inner) == 1 else value
    if hint is date:
        return date.fromisoformat(value) if isinstance(value, str) else value
    if origin in (list, tuple):
        (inner, *_) = typing.get_args(hint) or (Any,)
        return origin(_decode(inner, v) for v in value)
    return value


@dataclass(frozen=True)
class ExtractResult(StepResult):
    """Records fetched from one source for the run's report-date window, in a file."""

    records: int = 0
    start: date | None = None
    end: date | None = None
    path: str | None = None
    offline: bool = False

    def summary(self) -> str:
        if self.offline:
            return "offline: nothing fetched"
        return f"{self.records} records reported {self.start}..{self.end}"


@dataclass(frozen=True)
class LoadResult(StepResult):
    """What the load changed in ``raw``, and what the aggregation must recompute."""

    window_start: date
    weeks_touched: list[date] = field(default_factory=list)
    crime: dict[str, Any] | None = None
    weather: dict[str, Any] | None = None
    offline: bool = False

    def summary(self) -> str:
        if self.offline or self.crime is None or self.weather is None:
            return f"offline: the records in the database, from {self.window_start}"
        crime, weather = self.crime, self.weather
        return (
            f"crime +{crime['loaded']} ~{crime['updated']} rejected "
            f"{sum(crime['rejected'].values())}; weather +{weather['loaded']} ~{weather['updated']}"
        )


@dataclass(frozen=True)
class AggregateResult(StepResult):
    first_week: date
    last_week: date
    older_weeks: list[date] = field(default_factory=list)
    reports: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return f"weeks {self.first_week}..{self.last_week} (+{len(self.older_weeks)} older)"


@dataclass(frozen=True)
class CompletenessResult(StepResult):
    """The completeness check: complete, or what is missing (a note when allowed)."""

    week: date
    history_through: date
    incidents: int
    newest_report: str | None = None
    complete: bool = True
    trailing_median: float | None = None
    ratio: float | None = None
    # each still-publishing week's share of the trailing median
    incomplete_weeks: dict[str, float | None] = field(default_factory=dict)
    note: str | None = None

    def summary(self) -> str:
        text = f"complete through {self.history_through}: {self.incidents} incidents"
        if self.ratio is not None:
            text += f" ({self.ratio:.0%} of the trailing median)"
        partial = {w: s for w, s in self.incomplete_weeks.items() if s is not None}
        if partial:
            text += "; still publishing " + ", ".join(f"{w} ({s:.0%})" for w, s in partial.items())
        return text + (f"; {self.note}" if self.note else "")


@dataclass(frozen=True)
class ScoreResult(StepResult):
    """The target weeks scored by this run (none when nothing new was complete)."""

    history_through: date
    scored_weeks: list[date] = field(default_factory=list)
    scored_models: list[str] = field(default_factory=list)
    # the newest scored week's production scores: model_name, mae, poisson_deviance, pai_5pct
    production: dict[str, Any] | None = None
    actual_total: int | None = None
    note: str | None = None

    def summary(self) -> str:
        prod = self.production
        if prod:
            return (
                f"week(s) {', '.join(map(str, self.scored_weeks))}: {len(self.scored_models)} "
                f"models; production {prod['model_name']} MAE {prod['mae']:.3f} "
                f"PAI5 {prod['pai_5pct']:.2f}"
            )
        return self.note or f"{len(self.scored_models)} models"


@dataclass(frozen=True)
class TrainResult(StepResult):
    """The train step (:func:`crimejob.job.modelstep.train_for_week`)."""

    model_name: str
    skipped: bool = False  # a version trained on the same weeks and design was reused
    version: int | None = None
    promoted: bool = False
    mode: str | None = None
    reason: str | None = None
    headline: str = ""
    history_through: date | None = None
    horizon_weeks: int | None = None
    text: str = ""

    # modelstep's dict calls the headline "summary"
    _RENAMED: ClassVar[dict[str, str]] = {"summary": "headline"}

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        return super().from_dict({cls._RENAMED.get(k, k): v for k, v in data.items()})

    def summary(self) -> str:
        return self.headline


@dataclass(frozen=True)
class ForecastResult(StepResult):
    """Next week's forecast as written, and which model is production."""

    target_week: date
    history_through: date
    horizon_weeks: int
    rows: int
    production_model: str
    production_version: str | int | None = None
    production_reason: str | None = None
    models: list[str] = field(default_factory=list)
    history_weeks: int | None = None
    predicted_total: float | None = None
    card: str | None = None  # the production model's card: its path, "unchanged", ...

    def summary(self) -> str:
        version = self.production_version
        version_text = f"v{version}" if str(version).isdigit() else f"({version})"
        return (
            f"{self.target_week}: {self.rows} rows from history through "
            f"{self.history_through} (horizon {self.horizon_weeks} weeks), production "
            f"{self.production_model} {version_text}"
        )
