"""Model benchmark: cost per sample, training speed, and a 52-week backtest on the LA world.

One command, prints tables:

    .venv/bin/python benchmarks/bench_models.py [--backtest-weeks 52] [--skip-seed]

1. Per network: parameters, forward and forward+backward FLOPs per sample
   (counted from the built model's layer shapes: 2 FLOPs per multiply-add in
   Conv/Dense layers; backward taken as 2x forward, the usual estimate), and
   training samples/s measured with ``model.fit`` on this machine's device.
2. A rolling-origin backtest over the last ``--backtest-weeks`` weeks of a
   history of the LA development world (``crimejob.devworld``: ~0.13 violent
   incidents per cell-week, the real LAPD footprint and concentration),
   every model on the same weeks, with wall time per model. rate_cnn runs
   with its production budget; seed_cnn with the reduced budget printed under
   the table (its faithful 50 epochs on every window do not fit a CPU).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from crimejob.devworld import la_world  # noqa: E402
from crimejob.models.backtest import run_backtest  # noqa: E402
from crimejob.models.forecasters import BASELINES, get_forecaster  # noqa: E402
from crimejob.models.forecasters.keras_common import on_gpu, window_ends  # noqa: E402

SEED_BUDGET = {"epochs": 3, "max_train_windows": 32, "finetune_epochs": 1, "finetune_windows": 4}


def forward_flops(model) -> int:
    """2 x multiply-adds of every Conv and Dense layer, from the built layer shapes."""
    total = 0
    for layer in model.layers:
        kind = type(layer).__name__
        if kind in {"Conv2D", "Conv3D"}:
            out_elements = int(np.prod(layer.output.shape[1:]))
            kernel = layer.kernel.shape  # (*window, in_channels, filters)
            total += 2 * out_elements * int(np.prod(kernel[:-1]))
        elif kind == "Dense":
            total += 2 * int(layer.kernel.shape[0]) * int(layer.kernel.shape[1])
    return total


def training_speed(name: str, history, samples: int, overrides: dict) -> float:
    """Samples per second of model.fit (after one warm-up epoch that builds the graph)."""
    import keras

    forecaster = get_forecaster(name, **overrides)
    ends = window_ends(len(history), int(forecaster.hp["window"]))[-samples:]
    model = forecaster.build_model(history, ends)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=forecaster.loss())
    x = forecaster.model_inputs(history, ends)
    y = history.crime[ends + 1][..., None]
    model.fit(x, y, batch_size=forecaster.batch_size, epochs=1, verbose=0)
    started = time.perf_counter()
    model.fit(x, y, batch_size=forecaster.batch_size, epochs=1, verbose=0)
    return len(ends) / (time.perf_counter() - started)


def cost_table(history, skip_seed: bool) -> list[dict]:
    rows = []
    plan = [("rate_cnn", 64, {}), ("sparse_cnn", 64, {})]
    if not skip_seed:
        plan.append(("seed_cnn", 16, {}))
    for name, samples, overrides in plan:
        forecaster = get_forecaster(name, **overrides)
        ends = window_ends(len(history), int(forecaster.hp["window"]))
        model = forecaster.build_model(history, ends[:1])
        fwd = forward_flops(model)
        rows.append(
            {
                "model": name,
                "parameters": int(model.count_params()),
                "fwd_gflops": fwd / 1e9,
                "fwd_bwd_gflops": 3 * fwd / 1e9,
                "batch": forecaster.batch_size,
                "train_samples_per_s": training_speed(name, history, samples, overrides),
            }
        )
        del model
    for name in BASELINES:
        rows.append(
            {
                "model": name,
                "parameters": 0,
                "fwd_gflops": 0.0,
                "fwd_bwd_gflops": 0.0,
                "batch": 0,
                "train_samples_per_s": float("nan"),
            }
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history-weeks", type=int, default=156)
    parser.add_argument("--backtest-weeks", type=int, default=52)
    parser.add_argument("--seed", type=int, default=1, help="LA world seed")
    parser.add_argument("--skip-seed", action="store_true", help="leave seed_cnn out")
    parser.add_argument("--models", help="comma-separated models to backtest (default: all)")
    parser.add_argument(
        "--seed-budget",
        type=json.loads,
        default=SEED_BUDGET,
        help=f"seed_cnn hyperparameter overrides, JSON (default {json.dumps(SEED_BUDGET)})",
    )
    parser.add_argument("--skip-costs", action="store_true", help="skip the cost table")
    parser.add_argument("--skip-backtest", action="store_true", help="print the cost table only")
    parser.add_argument("--json", help="also write all figures to this file")
    args = parser.parse_args()

    import keras

    device = "GPU" if on_gpu() else "CPU"
    print(
        f"device: {device} ({os.cpu_count()} CPU cores visible, {platform.processor() or 'cpu'}), "
        f"keras {keras.__version__} on {keras.config.backend()}"
    )
    if device == "CPU":
        print("no GPU in this run: GPU figures were not measured")

    history = la_world(seed=args.seed, weeks=args.history_weeks).history()
    print(
        f"LA world history: {len(history)} weeks from {history.week_starts[0]}, "
        f"mean {history.crime.mean():.3f} incidents per cell-week, "
        f"{(history.crime.sum(0) > 0).mean():.0%} of cells active"
    )

    costs = [] if args.skip_costs else cost_table(history, args.skip_seed)
    if costs:
        print("\n== cost per sample ==")
        print(
            f"{'model':<10} {'params':>12} {'fwd GFLOP':>10} {'fwd+bwd GFLOP':>14} "
            f"{'batch':>6} {'train samples/s':>16}"
        )
    for row in costs:
        print(
            f"{row['model']:<10} {row['parameters']:>12,} {row['fwd_gflops']:>10.3f} "
            f"{row['fwd_bwd_gflops']:>14.3f} {row['batch']:>6} {row['train_samples_per_s']:>16.2f}"
        )

    if args.skip_backtest:
        if args.json:
            Path(args.json).write_text(json.dumps({"device": device, "costs": costs}, indent=2))
        return 0
    models = [*BASELINES, "rate_cnn", "sparse_cnn"] + ([] if args.skip_seed else ["seed_cnn"])
    if args.models:
        models = [m.strip() for m in args.models.split(",") if m.strip()]
    start = history.week_starts[-args.backtest_weeks].astype("datetime64[D]").item()
    end = history.last_week
    print(f"\n== backtest: {args.backtest_weeks} weeks, {start} .. {end}, on {device} ==")
    started = time.perf_counter()
    result = run_backtest(history, start, end, models, overrides={"seed_cnn": args.seed_budget})
    print(result.format_table())
    print(f"total backtest wall time: {time.perf_counter() - started:.1f} s")
    for model in models:
        print(f"  {model}: {result.seconds[model]:.1f} s for {args.backtest_weeks} weeks")

    if args.json:
        Path(args.json).write_text(
            json.dumps({"device": device, "costs": costs, "backtest": result.to_json()}, indent=2)
        )
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
