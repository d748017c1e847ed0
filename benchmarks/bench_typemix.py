"""Crime-type mix and severity forecasts per cell: ours against each cell's long-run mix.

One command, prints a table (one row per model) and the paired differences:

    .venv/bin/python benchmarks/bench_typemix.py              # 52 target weeks
    .venv/bin/python benchmarks/bench_typemix.py --targets 8  # quick

Data: the LA development world (``crimejob.devworld``), its incident records'
``crm_cd``/``nibr_code`` mapped to the ten categories (``crimejob.grid.categories``),
counted per cell and week, 2015 onwards. For each target week every model sees
the weeks before it only (``crimejob.serving.typemix``): ``shrunk_mix`` (ours),
``long_run_mix`` (each cell's long-run mix: the baseline the issue names) and
``recent_mix`` (its last 52 weeks). Scores per week: multi-class log loss over
the week's incidents, Poisson deviance per category (mean over all 4,500 cells),
and the severity-weighted count (``crimejob.serving.severity``) by MAE and R² over the
active cells. Paired differences: ours minus the best baseline, per week,
with Newey-West standard errors.

Note: in the dev world an incident's code is drawn from one citywide mix for
violent and one for other incidents, so a cell's true mix differs from the
city's only through its violent share; real cells differ more (liquor stores,
car parks...), which favours the cell's own long-run mix more than here.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from crimejob.devworld import la_world  # noqa: E402
from crimejob.grid.categories import CATEGORIES  # noqa: E402
from crimejob.grid.cells import N_CELLS  # noqa: E402
from crimejob.serving.typemix import (  # noqa: E402
    LongRunMix,
    RecentMix,
    ShrunkMix,
    category_history,
    score_mix,
)
from crimejob.serving.volume import newey_west_se  # noqa: E402

LOWER_IS_BETTER = {"severity_r2": False}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--start", default="2015-01-05")
    parser.add_argument("--weeks", type=int, default=208)
    parser.add_argument("--targets", type=int, default=52, help="target weeks scored")
    args = parser.parse_args()

    started = time.perf_counter()
    world = la_world(seed=args.seed, start=date.fromisoformat(args.start), weeks=args.weeks)
    records = world.records()
    history = category_history(records, world.week_starts, N_CELLS)
    models = [ShrunkMix(labels=world.cell_area), LongRunMix(), RecentMix()]
    rows = []
    kappas = []
    for t in range(len(history) - args.targets, len(history)):
        past = history.through(t - 1)
        active = past.counts.sum(axis=(0, 1)) > 0
        for model in models:
            model.fit(past)
            scores = score_mix(model, past, history.counts[t].astype(np.float64), active)
            rows.append({"model": model.name, "target_week": history.week_starts[t], **scores})
        kappas.append(models[0].kappa)
    table = pd.DataFrame(rows)
    metrics = [c for c in table.columns if c not in ("model", "target_week")]
    means = table.groupby("model", sort=False)[metrics].mean()
    print(
        f"LA dev world seed {args.seed}, {args.weeks} weeks from {args.start}; "
        f"{args.targets} target weeks {history.week_starts[-args.targets]}.."
        f"{history.week_starts[-1]}; {len(records):,} incidents; "
        f"{int(table['target_week'].nunique())} weeks x {len(models)} models; "
        f"kappa chosen {min(kappas):g}..{max(kappas):g}"
    )
    short = {"log_loss": "logloss", "severity_mae": "sevMAE", "severity_r2": "sevR2"}
    short |= {f"deviance_{c}": f"dev:{c[:8]}" for c in CATEGORIES}
    print("\n| model | " + " | ".join(short[m] for m in metrics) + " |")
    print("| --- " * (len(metrics) + 1) + "|")
    for name, row in means.iterrows():
        print(f"| {name} | " + " | ".join(f"{row[m]:.4f}" for m in metrics) + " |")
    print("\nshrunk_mix minus the best baseline (per week; Newey-West SE):\n")
    print("| metric | best baseline | diff | SE |\n| --- | --- | --- | --- |")
    baselines = [m.name for m in models[1:]]
    for metric in metrics:
        lower = LOWER_IS_BETTER.get(metric, True)
        best = (min if lower else max)(baselines, key=lambda b: means.loc[b, metric])
        ours = table[table["model"] == "shrunk_mix"][metric].to_numpy()
        theirs = table[table["model"] == best][metric].to_numpy()
        diff = ours - theirs
        print(f"| {short[metric]} | {best} | {diff.mean():+.5f} | {newey_west_se(diff):.5f} |")
    print(f"\nseconds: {time.perf_counter() - started:.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
