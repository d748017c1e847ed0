"""Forecast benchmark on real data: every model, the same backtest, three data sets.

One command, prints per data set the backtest table (means per model) and
the paired differences to the best baseline:

    .venv/bin/python benchmarks/bench_forecast.py            # the full run
    .venv/bin/python benchmarks/bench_forecast.py --quick    # a few target weeks each
    .venv/bin/python benchmarks/bench_forecast.py --datasets philadelphia --models mean_all,lgbm

Data sets (``benchmarks/datasets.py``): (a) Philadelphia's shooting incidents
2015-2023 on 60 x 75 cells, (b) every LAPD incident in the downtown LA box on
~165 m cells, (c) the LA development world (``crimejob.devworld``). Models:
every baseline and every network in ``crimejob.models.forecasters`` (a network added
there appears here by itself), each scored by ``crimejob.models.backtest.run_backtest``
on the same target weeks. ``seed_cnn`` runs on the reduced CPU budget printed
under its table (``--budgets`` changes any model's).

``--policy`` adds the row ``production``: the weekly job's policy replayed
(:class:`crimejob.models.policies.ProductionPolicy`: the network ``--policy-network``,
default ``CRIMEJOB_MODEL``, retrained every 13 weeks and fine-tuned weekly on
its budget here, the gate, and each week's champion decision among it and every
baseline), scored like every other row: the "champion policy".

Paired differences: for each metric the best baseline is the one with the
best mean over the target weeks (lowest error or deviance; highest hit rate,
PAI, PEI; for ``mass`` the mean closest to 1, compared as |mass - 1|). Each
model's per-week difference to it is averaged; its standard error is
Newey-West (Bartlett kernel, lag floor(4 (n/100)^(2/9))), because weekly
scores are autocorrelated and an i.i.d. standard error would be too small.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from benchmarks import datasets  # noqa: E402
from crimejob.grid.series_break import scores_by_era  # noqa: E402
from crimejob.models.backtest import BacktestResult, run_backtest  # noqa: E402
from crimejob.models.compare import newey_west_se  # noqa: E402
from crimejob.models.forecasters import BASELINES, NETWORKS  # noqa: E402

SEED_BUDGET = {"epochs": 3, "max_train_windows": 32, "finetune_epochs": 1, "finetune_windows": 4}
# Target weeks per data set: the newest N weeks of its history (full run, --quick).
TARGET_WEEKS = {"philadelphia": (156, 26), "downtown_la": (39, 13), "la_world": (104, 26)}
# (metric key, column label, direction): -1 lower is better, +1 higher, 0 closest to 1.
METRICS = (
    ("poisson_deviance", "PoisDev", -1),
    ("poisson_deviance_active", "PDev_act", -1),
    ("mae", "MAE", -1),
    ("rmse", "RMSE", -1),
    ("mae_active", "MAE_act", -1),
    ("rmse_active", "RMSE_act", -1),
    ("hit_rate_1pct", "HR@1%", 1),
    ("pai_1pct", "PAI@1%", 1),
    ("pei_1pct", "PEI@1%", 1),
    ("hit_rate_5pct", "HR@5%", 1),
    ("pai_5pct", "PAI@5%", 1),
    ("pei_5pct", "PEI@5%", 1),
    ("hit_rate_10pct", "HR@10%", 1),
    ("pai_10pct", "PAI@10%", 1),
    ("pei_10pct", "PEI@10%", 1),
    ("mass_ratio", "mass", 0),
)


def _per_week(result: BacktestResult, model: str, key: str) -> np.ndarray:
    return np.array([r.get(key, np.nan) for r in result.rows if r["model"] == model], np.float64)


def paired_differences(result: BacktestResult, baselines: list[str]) -> dict[str, Any]:
    """Per metric: the best baseline and each model's mean paired difference and its SE."""
    out: dict[str, Any] = {}
    for key, _, direction in METRICS:
        if not any(key in r for r in result.rows):
            continue

        def loss(model: str, key: str = key, direction: int = direction) -> np.ndarray:
            values = _per_week(result, model, key)
            return np.abs(values - 1.0) if direction == 0 else values

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            means = {b: float(np.nanmean(loss(b))) for b in baselines}
        ranked = [b for b in baselines if np.isfinite(means[b])]
        if not ranked:
            continue
        best = (max if direction > 0 else min)(ranked, key=means.get)
        reference = loss(best)
        rows = {}
        for model in result.models:
            diff = loss(model) - reference
            diff = diff[np.isfinite(diff)]
            if len(diff) == 0:
                continue
            rows[model] = {
                "diff": float(diff.mean()),
                "se": newey_west_se(diff),
                "weeks": int(len(diff)),
            }
        out[key] = {"best_baseline": best, "best_mean": means[best], "models": rows}
    return out


def format_differences(diffs: dict[str, Any], models: list[str]) -> str:
    """Two tables (errors, hotspots): each model's difference to the best baseline (SE)."""
    lines = []
    groups = (
        [m for m in METRICS if not m[0].startswith(("hit", "pai", "pei"))],
        [m for m in METRICS if m[0].startswith(("hit", "pai", "pei"))],
    )
    for group in groups:
        group = [m for m in group if m[0] in diffs]
        if not group:
            continue
        width = 17
        header = f"{'model':<15}" + "".join(f"{label:>{width}}" for _, label, _ in group)
        best = f"{'best baseline':<15}" + "".join(
            f"{diffs[k]['best_baseline']:>{width}}" for k, _, _ in group
        )
        value = f"{'  its mean':<15}" + "".join(
            f"{diffs[k]['best_mean']:>{width}.4f}" for k, _, _ in group
        )
        lines += [header, best, value, "-" * len(header)]
        for model in models:
            cells = []
            for key, _, _ in group:
                row = diffs[key]["models"].get(model)
                cells.append(
                    f"{row['diff']:+.4f}({row['se']:.4f})".rjust(width) if row else " " * width
                )
            lines.append(f"{model:<15}" + "".join(cells))
        lines.append("")
    return "\n".join(lines)


def backtest_each(
    history, start, end, models: list[str], overrides: dict[str, dict[str, Any]], progress: bool
) -> tuple[BacktestResult, dict[str, str]]:
    """run_backtest model by model (same code, same weeks); a model that fails is reported."""
    combined, failures = None, {}
    for model in models:
        try:
            result = run_backtest(history, start, end, [model], overrides, progress=progress)
        except Exception as exc:  # a network that cannot run on this grid, say
            failures[model] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
            print(f"  {model} failed: {failures[model]}", flush=True)
            continue
        print(f"  {model}: {result.seconds[model]:.1f} s", flush=True)
        if combined is None:
            combined = result
        else:
            combined.models += result.models
            combined.rows += result.rows
            combined.seconds.update(result.seconds)
            combined.hyperparameters.update(result.hyperparameters)
    return combined, failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--datasets", default="philadelphia,downtown_la,la_world", help="comma-separated"
    )
    parser.add_argument("--models", help="comma-separated (default: every baseline and network)")
    parser.add_argument("--quick", action="store_true", help="few target weeks per data set")
    parser.add_argument("--target-weeks", type=int, help="target weeks for every data set")
    parser.add_argument("--world-seed", type=int, default=0)
    parser.add_argument(
        "--budgets",
        type=json.loads,
        default={},
        help='per-model hyperparameter overrides, JSON, e.g. \'{"rate_cnn": {"epochs": 5}}\'',
    )
    parser.add_argument("--progress", action="store_true", help="print every scored week")
    parser.add_argument(
        "--policy", action="store_true", help="add the champion policy as the row 'production'"
    )
    parser.add_argument(
        "--policy-network",
        help="the network the policy trains (default: CRIMEJOB_MODEL; none: baselines only)",
    )
    parser.add_argument("--json", help="also write every figure to this file")
    args = parser.parse_args()

    models = (
        [m.strip() for m in args.models.split(",") if m.strip()]
        if args.models
        else [*BASELINES, *NETWORKS]
    )
    if args.policy:
        if args.policy_network:  # "none": the champion among the baselines only
            os.environ["CRIMEJOB_MODEL"] = (
                "mean_all" if args.policy_network == "none" else args.policy_network
            )
        models = [*models, "production"]
    baselines = [m for m in models if m in BASELINES]
    overrides = {"seed_cnn": SEED_BUDGET, **args.budgets}
    loaders = {
        "philadelphia": datasets.philadelphia,
        "downtown_la": datasets.downtown_la,
        "la_world": lambda: datasets.la_world(seed=args.world_seed),
    }
    report: dict[str, Any] = {"models": models, "overrides": overrides, "datasets": {}}
    started_all = time.perf_counter()
    for name in [d.strip() for d in args.datasets.split(",") if d.strip()]:
        if name not in loaders:
            parser.error(f"unknown data set {name!r}; choose from {', '.join(loaders)}")
        dataset = loaders[name]()
        history = dataset.history
        full, quick = TARGET_WEEKS[name]
        n_targets = args.target_weeks or (quick if args.quick else full)
        n_targets = min(n_targets, len(history) - 26)
        start = history.week(len(history) - n_targets)
        end = history.last_week
        crime = history.crime
        print(f"\n== {dataset.description} ==")
        print(
            f"{crime.mean():.4f} per cell-week, {crime.sum((1, 2)).mean():.1f} a week, "
            f"{int((history.incidents.sum(0) > 0).sum())} of {crime[0].size} cells ever active; "
            f"{dataset.dropped} records without a cell; targets {start} .. {end} "
            f"({n_targets} weeks, first {len(history) - n_targets} weeks history only)",
            flush=True,
        )
        began = time.perf_counter()
        result, failures = backtest_each(history, start, end, models, overrides, args.progress)
        seconds = time.perf_counter() - began
        if result is None:
            print("every model failed")
            continue
        print(result.format_table())
        diffs = paired_differences(result, [m for m in baselines if m in result.models])
        print("\npaired difference to the best baseline, per week: mean (Newey-West SE)")
        print(format_differences(diffs, result.models))
        by_era = scores_by_era(result.rows, history)
        if any(len(eras) > 1 for eras in by_era.values()):
            print("\nmean Poisson deviance by era of the 2024 NIBRS switch (weeks)")
            for model, eras in by_era.items():
                print(
                    f"{model:<15}"
                    + "".join(
                        f"  {era} {v['mean']:.5f} ({v['weeks']})" for era, v in sorted(eras.items())
                    )
                )
        print(f"{name}: {seconds:.1f} s")
        report["datasets"][name] = {
            "description": dataset.description,
            "target_weeks": [start.isoformat(), (end + timedelta(days=0)).isoformat()],
            "backtest": result.to_json(),
            "paired_differences": diffs,
            "deviance_by_series_era": by_era,
            "failures": failures,
            "seconds": seconds,
        }
    total = time.perf_counter() - started_all
    print(f"\ntotal wall time: {total:.1f} s ({'quick' if args.quick else 'full'} run)")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1, default=str))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
