"""The division volume plot: weekly violent incidents per LAPD division and citywide,
the forecasts with their 90% intervals, and the holiday weeks marked.

Drawn beside the scoreboard (``crimejob plot --divisions FILE.png``): one panel
per division and one for the city, the newest ``weeks`` weeks. Actuals come
from the grid rows summed over each division's cells (``grid.cell_areas``, as
``bi.division_scores`` sums them); forecasts from ``ml.division_forecasts``: the
production cell model's sums, and any volume model's rows. A holiday week (a
US federal or California holiday on one of its days) is a shaded band.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import sqlalchemy as sa
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure
from sqlalchemy.engine import Engine

from crimejob.errors import DataError
from crimejob.serving.divisions import CITYWIDE

_ACTUALS = sa.text(
    """
    WITH recent AS (
        SELECT week_start FROM grid.weeks ORDER BY week_start DESC LIMIT :weeks
    )
    SELECT w.week_start, a.area_name, sum(w.violent_count)::integer AS actual
    FROM grid.weekly AS w
    JOIN recent USING (week_start)
    JOIN grid.cell_areas AS a USING (cell_id)
    GROUP BY w.week_start, a.area_name
    UNION ALL
    SELECT w.week_start, :city, sum(w.violent_count)::integer
    FROM grid.weekly AS w JOIN recent USING (week_start)
    GROUP BY w.week_start
    """
)
_HOLIDAYS = sa.text(
    """
    SELECT wk.week_start, coalesce(wk.holiday_names, 'holiday') AS names
    FROM grid.weeks AS wk
    WHERE wk.week_start >= (SELECT min(week_start) FROM (
              SELECT week_start FROM grid.weeks ORDER BY week_start DESC LIMIT :weeks) AS r)
      AND (wk.holiday_names IS NOT NULL
           OR EXISTS (SELECT 1 FROM grid.weekly AS w
                      WHERE w.week_start = wk.week_start AND w.holiday = 1))
    ORDER BY wk.week_start
    """
)
_FORECASTS = sa.text(
    """
    SELECT target_week, area_name, model_name, predicted, predicted_low, predicted_high
    FROM ml.division_forecasts
    WHERE (is_production OR method = 'volume_model') AND target_week >= :first
    ORDER BY target_week
    """
)


def division_volume(engine: Engine, weeks: int = 104) -> dict[str, pd.DataFrame]:
    """What the plot draws: ``actuals`` (week_start, area_name, actual), ``forecasts``
    (target_week, area_name, model_name, predicted, predicted_low, predicted_high) and
    ``holidays`` (week_start, names), over the newest ``weeks`` aggregated weeks."""
    with engine.connect() as conn:
        actuals = pd.read_sql_query(_ACTUALS, conn, params={"weeks": weeks, "city": CITYWIDE})
        if actuals.empty:
            raise DataError(
                "no division volumes yet: aggregate weeks (and map cells to divisions) first"
            )
        holidays = pd.read_sql_query(_HOLIDAYS, conn, params={"weeks": weeks})
        first = actuals["week_start"].min()
        forecasts = pd.read_sql_query(_FORECASTS, conn, params={"first": first})
    for frame, column in ((actuals, "week_start"), (holidays, "week_start"),
                          (forecasts, "target_week")):  # fmt: skip
        frame[column] = pd.to_datetime(frame[column])
    return {"actuals": actuals, "forecasts": forecasts, "holidays": holidays}


def plot_divisions(engine: Engine, out: Path, weeks: int = 104) -> Path:
    """One panel per division and one citywide: actual weekly violent incidents, the
    forecasts with 90% intervals, holiday weeks shaded. Writes a PNG."""
    data = division_volume(engine, weeks)
    actuals, forecasts, holidays = data["actuals"], data["forecasts"], data["holidays"]
    divisions = sorted(set(actuals["area_name"]) - {CITYWIDE})
    areas = [CITYWIDE, *divisions]
    ncols = min(4, len(areas))
    nrows = math.ceil(len(areas) / ncols)
    fig = Figure(figsize=(4.2 * ncols, 2.4 * nrows + 0.8))
    axes = fig.subplots(nrows, ncols, sharex=True, squeeze=False).ravel()
    half_week = pd.Timedelta(days=3.5)
    for ax, area in zip(axes, areas, strict=False):
        for week in holidays["week_start"]:
            ax.axvspan(week - half_week, week + half_week, color="orange", alpha=0.25, lw=0)
        seen = actuals[actuals["area_name"] == area].sort_values("week_start")
        ax.plot(seen["week_start"], seen["actual"], color="black", lw=1.0, label="actual")
        mine = forecasts[forecasts["area_name"] == area]
        for k, (model, rows) in enumerate(mine.groupby("model_name")):
            ax.errorbar(
                rows["target_week"] + pd.Timedelta(days=k), rows["predicted"],
                yerr=[rows["predicted"] - rows["predicted_low"],
                      rows["predicted_high"] - rows["predicted"]],
                fmt="o", ms=3, lw=0.8, capsize=1.5, label=f"{model} (90%)",
            )  # fmt: skip
        ax.set_title(area, fontsize=9, fontweight="bold" if area == CITYWIDE else None)
        ax.tick_params(labelsize=7)
        locator = AutoDateLocator(maxticks=5)
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    for ax in axes[len(areas) :]:
        ax.set_visible(False)
    handles, labels = axes[0].get_legend_handles_labels()
    if len(holidays):
        from matplotlib.patches import Patch

        handles.append(Patch(color="orange", alpha=0.25))
        labels.append("holiday week")
    fig.legend(handles, labels, loc="lower center", fontsize=8, ncol=len(labels))
    fig.suptitle("Weekly violent incidents per LAPD division and citywide: actual and forecast")
    fig.tight_layout(rect=(0, 0.06, 1, 0.95))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    return out
