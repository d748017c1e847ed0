"""What a command did, in numbers a person reads and a test asserts."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class IngestReport:
    """Counts of one ingest: new rows, changed rows, unchanged rows, rejects by reason."""

    source: str
    fetched: int = 0
    loaded: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: Counter = field(default_factory=Counter)
    weeks_touched: set = field(default_factory=set)

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    def merge(self, other: IngestReport) -> IngestReport:
        self.fetched += other.fetched
        self.loaded += other.loaded
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.rejected.update(other.rejected)
        self.weeks_touched |= other.weeks_touched
        return self

    def as_dict(self) -> dict:
        return {
            "source": self.source,
            "fetched": self.fetched,
            "loaded": self.loaded,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "rejected": dict(self.rejected),
            "weeks_touched": sorted(str(w) for w in self.weeks_touched),
        }

    def format(self) -> str:
        lines = [
            f"{self.source}: fetched {self.fetched}, loaded {self.loaded}, "
            f"updated {self.updated}, unchanged {self.unchanged}, rejected {self.rejected_total}"
        ]
        for reason, count in sorted(self.rejected.items()):
            lines.append(f"  rejected {reason}: {count}")
        return "\n".join(lines)
