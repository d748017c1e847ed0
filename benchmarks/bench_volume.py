"""Division and citywide weekly volume: LightGBM vs our cell model aggregated vs seasonal naive.

One command, prints per metric (MAE, Poisson deviance) a table with one row per
area (the 21 LAPD divisions and citywide) and horizon (1-4 weeks ahead):

    .venv/bin/python benchmarks/bench_volume.py                  # 52 origins, lgbm cells
    .venv/bin/python benchmarks/bench_volume.py --origins 8 --cell-models kde_mean   # quick

Data: the LA development world (``crimejob.devworld``), 2015-2019 (before the
2024 NIBRS break), its divisions the world's LAPD areas. From each origin week
T (the last ``--origins`` possible), every model forecasts T+1..T+4 having seen
weeks up to T only (``crimejob.serving.volume``: the LightGBM volume model refitted at
each origin and applied recursively, "blind"; each cell model fitted at each
horizon and summed over the division's cells; seasonal naive; the 13-week mean).

Paired difference: volume_lgbm minus the best baseline (lowest mean loss for that
area and horizon, among every other model), per origin, averaged; its standard
error is Newey-West (lag at least h - 1: consecutive origins share target weeks).
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
from crimejob.grid.history import GridHistory  # noqa: E402
from crimejob.models.forecasters import get_forecaster  # noqa: E402
from crimejob.models.uncertainty import dispersion_from_history, sum_of_cells  # noqa: E402
from crimejob.serving.volume import (  # noqa: E402
    backtest_volume,
    interval_coverage,
    paired_table,
    volume_series,
)


def cell_aggregates(
    history: GridHistory, labels: np.ndarray, n_areas: int, codes: list[int],
    model: str, origins: list[int], horizons: int, intervals: bool = False,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:  # fmt: skip
    """(origins, H, S): a cell model's forecasts, fitted from each origin at each horizon,
    summed over each division's cells and the city; with ``intervals``, also the 90%
    interval of the summed distribution (cells NB2 with the dispersion production
    estimates, ``crimejob.models.uncertainty``), as ``bi.division_forecasts`` gives it."""
    flat = np.asarray(labels).ravel()
    masks = [flat == c for c in codes] + [np.ones(flat.shape, bool)]
    out = np.zeros((len(origins), horizons, n_areas))
    low = np.zeros_like(out) if intervals else None
    high = np.zeros_like(out) if intervals else None
    for h in range(1, horizons + 1):
        forecaster = get_forecaster(model, horizon=h)
        for i, origin in enumerate(origins):
            past = history.select(slice(0, origin + 1))
            if forecaster.trainable:  # as run_backtest: a full fit first, then fine-tunes
                forecaster.fit(past) if i == 0 else forecaster.update(past)
            grid = forecaster.predict(past).reshape(-1).astype(np.float64)
            out[i, h - 1] = [grid[m].sum() for m in masks]
            if intervals:
                dispersion = dispersion_from_history(forecaster, past)
                for s, m in enumerate(masks):
                    lo, hi = sum_of_cells(grid[m], dispersion).interval()
                    low[i, h - 1, s], high[i, h - 1, s] = lo[0], hi[0]
    return out, low, high


def format_table(table: pd.DataFrame, models: list[str]) -> str:
    header = ["area", "h", *models, "best baseline", "diff (SE)"]
    lines = [" | ".join(header), " | ".join("---" for _ in header)]
    for row in table.itertuples(index=False):
        values = [f"{getattr(row, m.replace(':', '_')):.3f}" for m in models]
        lines.append(
            " | ".join(
                [
                    row.area,
                    str(row.horizon),
                    *values,
                    row.best_baseline,
                    f"{row.diff:+.3f} ({row.se:.3f})",
                ]
            )  # fmt: skip
        )
    return "\n".join("| " + line + " |" for line in lines)


def summary(table: pd.DataFrame) -> str:
    """Per horizon: in how many divisions volume_lgbm is better/worse by 2 SE, and citywide."""
    lines = []
    for h, part in table.groupby("horizon"):
        divisions = part[part["area"] != "citywide"]
        better = int((divisions["diff"] < -2 * divisions["se"]).sum())
        worse = int((divisions["diff"] > 2 * divisions["se"]).sum())
        city = part[part["area"] == "citywide"].iloc[0]
        lines.append(
            f"h={h}: divisions better by 2 SE {better}, worse {worse}, of {len(divisions)}; "
            f"mean diff over divisions {divisions['diff'].mean():+.3f}; citywide "
            f"{city['diff']:+.3f} ({city['se']:.3f}) vs {city['best_baseline']}"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--start", default="2015-01-05", help="the world's first Monday")
    parser.add_argument("--weeks", type=int, default=260, help="weeks in the world")
    parser.add_argument("--origins", type=int, default=52, help="origin weeks scored")
    parser.add_argument("--horizons", type=int, default=4)
    parser.add_argument(
        "--cell-models", default="lgbm,kde_mean",
        help="cell forecasters to aggregate (comma-separated; rate_cnn works, slowly)",
    )  # fmt: skip
    parser.add_argument(
        "--coverage-models",
        default="kde_mean",
        help="cell models whose summed 90%% intervals are checked (costs 13 extra forecasts "
        "per origin and horizon each)",
    )
    parser.add_argument("--csv", type=Path, help="also write the rows to this CSV file")
    args = parser.parse_args()

    started = time.perf_counter()
    world = la_world(seed=args.seed, start=date.fromisoformat(args.start), weeks=args.weeks)
    history = world.history()
    params = world.params["annual"]
    names = dict(zip(params["area_code"], params["area_name"], strict=True))
    series = volume_series(history, world.cell_area, names)
    last = len(series) - args.horizons - 1
    origins = list(range(last - args.origins + 1, last + 1))
    cells = [m for m in args.cell_models.split(",") if m]
    aggregates, bounds, seconds = {}, {}, {}
    for model in cells:
        t0 = time.perf_counter()
        aggregates[f"cell:{model}"], low, high = cell_aggregates(
            history, world.cell_area, len(series.names), sorted(names), model, origins,
            args.horizons, intervals=model in args.coverage_models.split(","),
        )  # fmt: skip
        if low is not None:
            bounds[f"cell:{model}"] = (low, high)
        seconds[f"cell:{model}"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = backtest_volume(series, origins, args.horizons, aggregates)
    seconds["volume_lgbm (+ naive)"] = time.perf_counter() - t0
    baselines = [m for m in result.forecasts if m != "volume_lgbm"]
    models = ["volume_lgbm", *baselines]
    print(
        f"LA dev world seed {args.seed}, {args.weeks} weeks from {args.start}; "
        f"{len(origins)} origins {result.origins[0]}..{result.origins[-1]}, "
        f"horizons 1-{args.horizons}; {len(series.names) - 1} divisions + citywide; "
        f"mean weekly violent count citywide {series.counts[:, -1].mean():.0f}"
    )
    frames = []
    for metric in ("mae", "deviance"):
        table = paired_table(result, "volume_lgbm", baselines, metric)
        table.columns = [c.replace(":", "_") for c in table.columns]
        print(f"\n## {metric} (volume_lgbm minus the best baseline, Newey-West SE)\n")
        print(format_table(table, models))
        print()
        print(summary(table))
        frames.append(table.assign(metric=metric))
    print("\n## 90% interval coverage (share of origins inside; 0.90 is calibrated)\n")
    print("| model | h | citywide | divisions: mean | min | max |")
    print("| --- | --- | --- | --- | --- | --- |")
    coverage = {"volume_lgbm": interval_coverage(result, "volume_lgbm")}
    for model, (low, high) in bounds.items():
        coverage[model] = interval_coverage(result, model, low, high)
    for model, table in coverage.items():
        for h in range(args.horizons):
            divisions = table[h, :-1]
            print(f"| {model} | {h + 1} | {table[h, -1]:.2f} | {divisions.mean():.2f} | "
                  f"{divisions.min():.2f} | {divisions.max():.2f} |")  # fmt: skip
    print("\nseconds: " + ", ".join(f"{k} {v:.0f}" for k, v in seconds.items())
          + f"; total {time.perf_counter() - started:.0f}")  # fmt: skip
    if args.csv:
        pd.concat(frames).to_csv(args.csv, index=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
