"""The feedback-loop check (Ensign et al. 2018): patrols follow the flags and find more
incidents there; do the flags lock in? Our champion against every baseline.

    .venv/bin/python benchmarks/bench_feedback.py [--weeks 52] [--seeds 3]
        [--champion rate_cnn] [--champion-epochs 8] [--world la|philadelphia]

The simulation is :mod:`crimejob.serving.feedback` (read its docstring for the world and
every column). The champion network is fitted once on the year of public
reports before the loop (``--champion-epochs`` epochs: the budget is printed)
and then used as it is, as the weekly job uses a promoted version between
retrains; it sees the loop through its inputs. Two designs are compared on the
same world and the same random draws:

- ``all_records``: the model is given every incident the police recorded,
  including those patrols found in flagged cells (police-initiated);
- ``public_only``: only incidents the public reported (the project's design).

The table lists each model and design; below it, the feedback effect: the
difference all_records - public_only in the share of initial flags stuck,
the churn and the truth PEI, with the standard error over seeds.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from crimejob.models.forecasters import BASELINES, default_model, get_forecaster  # noqa: E402
from crimejob.serving.feedback import (  # noqa: E402
    DESIGNS,
    format_check,
    pre_period,
    simulate,
    world_from_history,
)


def world_history(name: str):
    if name == "philadelphia":
        from bench_uncertainty import philadelphia

        return philadelphia()
    from crimejob.devworld import la_world

    return la_world(seed=0, start=date(2021, 1, 4), weeks=104).history()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weeks", type=int, default=52)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--champion", default=default_model())
    parser.add_argument("--champion-epochs", type=int, default=8)
    parser.add_argument("--world", choices=["la", "philadelphia"], default="la")
    args = parser.parse_args()

    history = world_history(args.world)
    world = world_from_history(history)
    pre = pre_period(world, history)
    print(
        f"world: {args.world}, {world.start_rate.shape[0]} x {world.start_rate.shape[1]} cells, "
        f"{world.start_rate.sum():.0f} true incidents a week, public reports "
        f"{world.report_rate:.0%}, patrols find {world.discovery:.0%} of the rest in flagged "
        f"cells; hotspots slide 3 x 4 cells over {args.weeks} weeks; {args.seeds} seed(s)"
    )
    forecasters = {b: get_forecaster(b) for b in BASELINES}
    if args.champion not in BASELINES:
        champion = get_forecaster(args.champion, epochs=args.champion_epochs)
        began = time.perf_counter()
        champion.fit(pre)
        print(
            f"champion {args.champion}: fitted on the {len(pre)} weeks before the loop in "
            f"{time.perf_counter() - began:.0f} s, {args.champion_epochs} epochs (then frozen)"
        )
        forecasters = {args.champion: champion, **forecasters}
    else:
        print(f"champion {args.champion} is a baseline")

    rows, effects = [], []
    for name, forecaster in forecasters.items():
        began = time.perf_counter()
        per_design = {}
        for design in DESIGNS:
            runs = [
                simulate(forecaster, pre, world, design, weeks=args.weeks, seed=seed).summary()
                for seed in range(args.seeds)
            ]
            per_design[design] = runs
            row = {"model": name, "design": design}
            for key in runs[0]:
                finite = [r[key] for r in runs if np.isfinite(r[key])]
                row[key] = float(np.mean(finite)) if finite else float("nan")
            rows.append(row)
        effect = {"model": name, "seconds": time.perf_counter() - began}
        for key in ("stuck", "churn", "truth_pei"):
            diff = np.array(
                [a[key] - b[key] for a, b in zip(*per_design.values(), strict=True)], np.float64
            )
            se = diff.std(ddof=1) / np.sqrt(len(diff)) if len(diff) > 1 else float("nan")
            effect[key] = (float(diff.mean()), float(se))
        effects.append(effect)

    print()
    print(format_check(rows))
    print("\nfeedback effect: all_records - public_only (mean over seeds +- standard error)")
    print(f"{'model':<12} {'stuck':>16} {'churn':>16} {'truthPEI':>16} {'seconds':>8}")
    for e in effects:
        cells = " ".join(
            f"{e[k][0]:>+8.3f} +-{e[k][1]:>5.3f}" for k in ("stuck", "churn", "truth_pei")
        )
        print(f"{e['model']:<12} {cells} {e['seconds']:>8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
