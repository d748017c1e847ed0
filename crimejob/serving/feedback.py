"""A feedback-loop check after Ensign et al. (2018), "Runaway feedback loops in predictive
policing": do the flags lock in when patrols follow them?

The simulated world, week by week:

1. Incidents happen: ``Y ~ Poisson(true_rate)`` per cell. The true rates drift:
   over the run the hotspots move (the rate field slides a few cells), so a
   forecaster that follows the truth must move its flags too.
2. The public reports a share of them everywhere: ``R ~ Binomial(Y, report_rate)``.
3. Patrols go to the cells the forecaster flagged (5% of the area) and find
   more there: of the incidents nobody reported, ``D ~ Binomial(Y - R,
   discovery * flag)`` are recorded by the police themselves (police-initiated).
4. The forecaster forecasts next week from the records: under the design
   ``all_records`` it sees ``R + D`` (what the police recorded, as a naive
   pipeline would), under ``public_only`` only ``R`` (this project's design
   answer: train only on incidents the public reported).

``public_only`` is also the control: patrols there change nothing the model
sees. Reported per forecaster and design:

- ``lock_in_week``: the first week from which the 5% flag set never again
  changes by more than a tenth (Jaccard >= 0.9 with the week before, to the end);
- ``release_week``: the first week in which fewer than half of the first
  week's flags are still flagged ("never" within the run: the flags stayed
  where they started, though the truth moved): how fast flags lock in;
- ``stuck``: share of the first week's flags still flagged in the last week
  (the truth has moved, so a high share means the flags did not follow it);
- ``churn``: mean week-to-week 1 - Jaccard of the flags;
- ``truth_pei``: how much of the true rate the last week's flags hold, against
  the best possible cells (1 = the flags sit on the true hotspots);
- ``recorded_lift``: incidents the model is given per true incident in flagged
  cells, over the same in unflagged cells (1 = the flags do not inflate their
  own evidence; ``all_records`` gives about 1 + discovery x (1 - report_rate)
  / report_rate = 1.5 with the defaults).

Forecasters are used as they are (a network is not refitted inside the loop, it
still sees the loop through its inputs); :func:`run_check` refits nothing that the
weekly job would not refit. The forecaster sees the newest ``keep_weeks`` (60) weeks
of records, but the window slides in steps of ``slide_every`` (13) weeks: its oldest
weeks are dropped only in the weeks on the 13-week calendar of ``lgbm``'s anchors
(:data:`crimejob.models.forecasters.gbm.EPOCH`), so it holds up to 72 weeks. Why: lgbm
fits itself on the weeks through its anchor and caches the booster by those weeks; a
window sliding every week changed them every week and so refitted lgbm every simulated
week, where the weekly job refits it once a quarter. Sliding at the anchors, the fitted
weeks stay the same from one anchor to the next, so lgbm is refitted at each anchor and
forecasts from the newest weeks in between, as in production (a card's 26 weeks under
both designs: 5 fits instead of 36). The other forecasters read at most their last 52
weeks, or the whole window (``ewma``, ``mean_all``, ``kde_mean``, ``incident_share``),
which now holds up to 12 weeks more: their rows move a little (docs/accountability.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np

from crimejob.grid.history import GridHistory
from crimejob.models.forecasters.base import Forecaster
from crimejob.models.forecasters.gbm import EPOCH, REFIT_EVERY
from crimejob.models.metrics import budget_cells, flag_jaccard, flag_weights

DESIGNS = ("all_records", "public_only")


@dataclass(frozen=True)
class World:
    """True rates at the start and the end of the run (hotspots drift between them)."""

    start_rate: np.ndarray  # (rows, cols) true incidents per week
    end_rate: np.ndarray
    report_rate: float = 0.5
    discovery: float = 0.5

    def rate(self, step: int, steps: int) -> np.ndarray:
        mix = step / max(steps - 1, 1)
        return (1.0 - mix) * self.start_rate + mix * self.end_rate


def world_from_history(
    history: GridHistory, shift: tuple[int, int] = (3, 4), report_rate: float = 0.5
) -> World:
    """A world whose public reports look like ``history``'s last year, its hotspots
    sliding by ``shift`` cells over the run (only onto cells that have incidents)."""
    recent = history.crime[-52:].astype(np.float64).mean(axis=0)
    active = history.incidents.sum(axis=0) > 0
    start = recent / report_rate
    end = np.roll(start, shift, axis=(0, 1))
    end = np.where(active, np.maximum(end, start.min()), 0.0)
    end *= start.sum() / max(end.sum(), 1e-9)
    return World(start, end, report_rate=report_rate)


@dataclass
class FeedbackRun:
    model: str
    design: str
    jaccard: list[float] = field(default_factory=list)
    kept: list[float] = field(default_factory=list)  # share of week 1's flags still flagged
    truth_pei: list[float] = field(default_factory=list)
    flagged_true: float = 0.0
    flagged_recorded: float = 0.0
    other_true: float = 0.0
    other_recorded: float = 0.0
    first_flags: np.ndarray | None = None
    last_flags: np.ndarray | None = None

    def summary(self) -> dict[str, float]:
        # jac[i] compares week i + 2 with week i + 1 (weeks counted from 1)
        jac = np.array(self.jaccard, np.float64)
        lock = len(jac) + 2
        for i in range(len(jac) - 1, -1, -1):
            if jac[i] >= 0.9:
                lock = i + 2
            else:
                break
        first, last = self.first_flags, self.last_flags
        stuck = float(np.minimum(first, last).sum() / first.sum()) if first.sum() else np.nan
        released = [week for week, share in enumerate(self.kept, start=1) if share < 0.5]
        lift_flagged = self.flagged_recorded / self.flagged_true if self.flagged_true else np.nan
        lift_other = self.other_recorded / self.other_true if self.other_true else np.nan
        return {
            "lock_in_week": float(lock) if lock <= len(jac) + 1 else float("nan"),
            "release_week": float(released[0]) if released else float("nan"),
            "stuck": stuck,
            "churn": float(np.nanmean(1.0 - jac)) if len(jac) else float("nan"),
            "truth_pei": self.truth_pei[-1] if self.truth_pei else float("nan"),
            "recorded_lift": lift_flagged / lift_other if lift_other else float("nan"),
        }


def _extend(history: GridHistory, counts: np.ndarray) -> GridHistory:
    """``history`` plus one week of counts (weather: the same week a year before)."""
    week = np.array([history.week_starts[-1] + np.timedelta64(7, "D")])
    weather = history.weather[-52 if len(history) >= 52 else -1][None]
    counts = counts.astype(np.float32)[None]
    return GridHistory(
        np.concatenate([history.week_starts, week]),
        np.concatenate([history.crime, counts]),
        np.concatenate([history.weather, weather]),
        np.concatenate([history.incidents, counts]),
        np.concatenate([history.nibrs_share, history.nibrs_share[-1:]]),
    )


def simulate(
    forecaster: Forecaster,
    history: GridHistory,
    world: World,
    design: str,
    weeks: int = 26,
    budget: float = 0.05,
    seed: int = 0,
    keep_weeks: int = 60,
    slide_every: int = REFIT_EVERY,
) -> FeedbackRun:
    """Run the loop for ``weeks`` weeks from ``history`` (the records before patrols).

    The records' window drops its oldest weeks (down to ``keep_weeks``) only in the weeks
    on the ``slide_every``-week calendar (see the module docstring: so lgbm is refitted
    at its anchors, not every week)."""
    if design not in DESIGNS:
        raise ValueError(f"design must be one of {DESIGNS}, got {design!r}")
    rng = np.random.default_rng(seed)
    run = FeedbackRun(forecaster.name, design)
    records = history.select(slice(max(0, len(history) - keep_weeks), None))
    k = budget_cells(world.start_rate.size, budget)
    previous = None
    for step in range(weeks):
        predicted = forecaster.predict(records).astype(np.float64)
        flags = flag_weights(predicted, k).reshape(predicted.shape)
        rate = world.rate(step, weeks)
        true = rng.poisson(rate)
        public = rng.binomial(true, world.report_rate)
        found = rng.binomial(true - public, np.clip(world.discovery * flags, 0.0, 1.0))
        recorded = public + found
        seen = recorded if design == "all_records" else public
        best = np.sort(rate.ravel())[::-1][:k].sum()
        run.truth_pei.append(float((flags.ravel() @ rate.ravel()) / best) if best else np.nan)
        run.flagged_true += float((flags * true).sum())
        run.flagged_recorded += float((flags * seen).sum())
        run.other_true += float(((1 - flags) * true).sum())
        run.other_recorded += float(((1 - flags) * seen).sum())
        if previous is not None:
            run.jaccard.append(flag_jaccard(previous, predicted, budget))
        else:
            run.first_flags = flags.ravel()
        first = run.first_flags
        run.kept.append(float(np.minimum(first, flags.ravel()).sum() / max(first.sum(), 1e-9)))
        run.last_flags = flags.ravel()
        previous = predicted
        records = _extend(records, seen)
        on_calendar = (records.last_week - EPOCH).days // 7 % max(1, slide_every) == 0
        if on_calendar and len(records) > keep_weeks:
            records = records.select(slice(len(records) - keep_weeks, None))
    return run


def run_check(
    forecasters: dict[str, Forecaster],
    history: GridHistory,
    weeks: int = 26,
    seeds: int = 1,
    world: World | None = None,
) -> list[dict]:
    """Every forecaster under both designs (same world, same random draws per seed).

    The world is calibrated to ``history`` (:func:`world_from_history`); the loop
    starts from a year of the world's own public reports (:func:`pre_period`).
    Returns one row per forecaster and design: the means over seeds of
    :meth:`FeedbackRun.summary`.
    """
    world = world or world_from_history(history)
    history = pre_period(world, history)
    rows = []
    for name, forecaster in forecasters.items():
        if len(history) < forecaster.min_history:
            continue
        for design in DESIGNS:
            summaries = [
                simulate(forecaster, history, world, design, weeks=weeks, seed=seed).summary()
                for seed in range(seeds)
            ]
            mean = {key: _mean([s[key] for s in summaries]) for key in summaries[0]}
            rows.append({"model": name, "design": design, "weeks": weeks, **mean})
    return rows


def _mean(values: list[float]) -> float:
    """Mean over seeds; NaN ("never") only when every seed says never."""
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def format_check(rows: list[dict]) -> str:
    """The check's rows as a fixed-width table."""
    header = (
        f"{'model':<12} {'design':<12} {'release wk':>10} {'lock-in wk':>10} {'stuck':>7} "
        f"{'churn':>7} {'truthPEI':>8} {'lift':>6}"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        lock = "never" if np.isnan(r["lock_in_week"]) else f"{r['lock_in_week']:.1f}"
        release = "never" if np.isnan(r["release_week"]) else f"{r['release_week']:.1f}"
        lines.append(
            f"{r['model']:<12} {r['design']:<12} {release:>10} {lock:>10} {r['stuck']:>7.3f} "
            f"{r['churn']:>7.3f} {r['truth_pei']:>8.3f} {r['recorded_lift']:>6.2f}"
        )
    return "\n".join(lines)


def pre_period(world: World, history: GridHistory, weeks: int = 52, seed: int = 1) -> GridHistory:
    """``weeks`` weeks of public reports from the world's starting rates, no patrols yet,
    on ``history``'s calendar and weather (ending at its last week)."""
    rng = np.random.default_rng(seed)
    public = rng.binomial(rng.poisson(world.start_rate, (weeks, *world.start_rate.shape)),
                          world.report_rate).astype(np.float32)  # fmt: skip
    tail = history.select(slice(len(history) - weeks, None)) if len(history) >= weeks else history
    if len(tail) < weeks:
        last = history.last_week
        starts = np.array([last - timedelta(weeks=weeks - 1 - i) for i in range(weeks)],
                          "datetime64[D]")  # fmt: skip
        weather = np.zeros((weeks, *world.start_rate.shape, 3), np.float32)
        return GridHistory(starts, public, weather)
    return GridHistory(tail.week_starts, public, tail.weather, public, tail.nibrs_share)
