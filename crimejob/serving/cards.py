"""A model card (Mitchell et al., 2019) for the production model: what it is for, what it
is not for, the data and its breaks, and its record against every baseline.

``crimejob card [--out FILE.md]`` writes the card of the model production uses
now. Whenever production changes (a promotion: the weekly forecast step publishes
a model other than the week before's, or one without a card yet), the card of
the new production model is regenerated and stored with its version: a row in
``ml.model_cards`` (``bi.model_cards``) and a ``.card.md`` file beside its
``.keras`` artifact (baselines: ``models/baselines/NAME.card.md``).

Every number comes from the database: the registry and the gate's decision,
the weekly scores of the weeks this model was production (each baseline on the
same weeks, with the paired difference and its standard error), the errors by
division, calibration (mass ratio, interval coverage, a reliability table),
stability, and a short run of the feedback-loop check (:mod:`crimejob.serving.feedback`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from crimejob.errors import DataError
from crimejob.models.compare import paired

log = logging.getLogger(__name__)

BASELINE_VERSION = "baseline"
#: Metrics of the scoreboard table: (column, label, lower is better)
_BOARD = (
    ("poisson_deviance", "Poisson dev", True),
    ("mae", "MAE", True),
    ("pei_5pct", "PEI@5%", False),
    ("pai_5pct", "PAI@5%", False),
    ("mass_ratio", "mass ratio", None),
    ("coverage_90_active", "cov90 act", None),
    ("pit_coverage_90", "PIT cov90", None),
    ("jaccard_5pct", "Jaccard@5%", False),
)


#: A backfill's card takes the feedback-loop check from the version's stored card when that
#: check was calibrated to counts at most this many weeks older than the newest (the
#: retrain cycle); an older one is rerun.
FEEDBACK_REUSE_WEEKS = 13


@dataclass(frozen=True)
class Feedback:
    """A card's feedback-loop section and the last week of counts it was calibrated to
    (None: not run, nothing to reuse)."""

    lines: tuple[str, ...]
    through: date | None = None


@dataclass(frozen=True)
class ModelCard:
    model_name: str
    model_version: str
    text: str
    feedback: Feedback | None = None


def production_model(engine: Engine) -> tuple[str, str]:
    """(model_name, model_version) production forecasts with now: the newest production
    forecast's model, else the configured model's newest promoted version."""
    from crimejob.models.registry import production_version

    with engine.connect() as conn:
        row = conn.execute(
            sa.text(
                "SELECT model_name, model_version FROM ml.forecasts WHERE is_production "
                "ORDER BY target_week DESC LIMIT 1"
            )
        ).first()
    if row is not None:
        return row.model_name, row.model_version
    version = production_version(engine)
    if version is not None:
        return version.model_name, str(version.version)
    raise DataError("no production model yet: run the weekly job (or crimejob train) first")


def _decisions(engine: Engine) -> list[dict[str, Any]]:
    """Every row of ml.promotion_decisions, oldest first, whatever columns it has."""
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT * FROM ml.promotion_decisions ORDER BY decision_id"))
        return [dict(r._mapping) for r in rows]


def _table(frame: pd.DataFrame, floatfmt: str = "{:.4f}") -> str:
    """A DataFrame as a Markdown table."""
    if frame.empty:
        return "_(none)_"
    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    lines = [header, rule]
    for row in frame.itertuples(index=False):
        cells = []
        for value in row:
            if isinstance(value, float | np.floating):
                cells.append("-" if not np.isfinite(value) else floatfmt.format(value))
            else:
                cells.append(str(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _paired(scores: pd.DataFrame, name: str, metric: str) -> pd.DataFrame:
    """Mean paired difference production - baseline per baseline, its standard error, weeks."""
    wide = scores.pivot(index="target_week", columns="model_name", values=metric)
    rows = []
    for other in wide.columns:
        if other == name:
            continue
        # the same paired difference and (Newey-West) SE as the champion decision
        diff = paired(wide[name].to_numpy(), wide[other].to_numpy())
        rows.append(
            {
                "baseline": other,
                f"{metric} difference": diff.diff,
                "standard error": diff.se,
                "weeks": diff.weeks,
                "inside the noise": "yes"
                if diff.weeks < 2 or not abs(diff.diff) >= 2 * diff.se
                else "no",
            }
        )
    return pd.DataFrame(rows)


def _decision_lines(d: dict[str, Any]) -> list[str]:
    details = d.get("details") or {}
    lines = [
        f"**Why it is production.** Decision of {d['decided_at']:%Y-%m-%d}: {d['reason']} "
        f"(metric {d['metric']}, {len(d.get('gate_weeks') or [])} weeks none of the contenders "
        "was fitted to).",
    ]
    contenders = {}
    if details.get("candidate"):
        contenders["candidate"] = details["candidate"]
    if details.get("production"):
        contenders[f"previous production v{d.get('production_version')}"] = details["production"]
    contenders.update(details.get("baselines") or {})
    contenders.update(details.get("contenders") or {})
    rows = []
    for name, numbers in contenders.items():
        if not isinstance(numbers, dict):
            continue
        # a champion decision keeps each contender's means under "mean"
        means = numbers["mean"] if isinstance(numbers.get("mean"), dict) else numbers
        rows.append({"model": name, **{label: _number(means.get(c)) for c, label, _ in _BOARD[:4]}})
    if rows:
        lines += ["", "Means on those weeks:", "", _table(pd.DataFrame(rows))]
    return lines


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _version_section(engine: Engine, name: str, version: str) -> list[str]:
    from crimejob.models.registry import get_version

    decisions = _decisions(engine)
    # A champion decision (when decisions name a champion) says why this model is production;
    # otherwise the gate decision that promoted this version does.
    crowned = [
        d
        for d in decisions
        if d.get("champion_model") == name
        and str(d.get("champion_version") or BASELINE_VERSION) == version
    ]
    if version == BASELINE_VERSION:
        lines = [
            f"`{name}` is a baseline: it learns nothing and forecasts from the recent weeks of "
            "counts alone.",
        ]
        if crowned:
            return lines + [""] + _decision_lines(crowned[-1])
        return lines + [
            "No champion decision names it (a forecast written before production was chosen "
            "by champion decisions)."
        ]
    v = get_version(engine, name, int(version))
    lines = [
        f"- version v{v.version} ({v.mode}"
        + (f" from v{v.parent_version}" if v.parent_version else "")
        + f"), data through {v.data_through}, trained through {v.trained_through}, "
        f"{v.train_weeks} training weeks, forecast horizon {v.hyperparameters.get('horizon', 1)} "
        "week(s)",
        f"- artifact `{v.artifact_path}`",
    ]
    made = crowned or [
        d for d in decisions if d.get("model_name") == name and d.get("version") == v.version
    ]
    if made:
        lines += [""] + _decision_lines(made[-1])
    return lines


def _scoreboard(engine: Engine, name: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Scores of every model on the weeks ``name`` was production, and its area scores."""
    with engine.connect() as conn:
        scores = pd.read_sql_query(
            sa.text(
                "SELECT s.* FROM ml.forecast_scores AS s WHERE s.target_week IN ("
                " SELECT target_week FROM ml.forecast_scores"
                " WHERE is_production AND model_name = :m) ORDER BY target_week, model_name"
            ),
            conn,
            params={"m": name},
        )
        areas = pd.read_sql_query(
            sa.text(
                "SELECT a.* FROM ml.forecast_scores_by_area AS a WHERE a.target_week IN ("
                " SELECT target_week FROM ml.forecast_scores"
                " WHERE is_production AND model_name = :m)"
            ),
            conn,
            params={"m": name},
        )
    return scores, areas


def _reliability(engine: Engine, name: str) -> str:
    from crimejob.models.uncertainty import reliability_table

    frame = pd.read_sql_query(
        sa.text(
            "SELECT e.predicted, e.actual, f.prob_any FROM ml.forecast_errors AS e "
            "JOIN ml.forecasts AS f USING (target_week, model_name, cell_id) "
            "WHERE e.is_production AND e.model_name = :m AND f.prob_any IS NOT NULL "
            "AND e.cell_id IN (SELECT cell_id FROM grid.cell_areas)"
        ),
        engine,
        params={"m": name},
    )
    if frame.empty:
        return "_No scored week with stored probabilities yet._"
    rows = reliability_table(frame["predicted"], frame["actual"], frame["prob_any"])
    return _table(pd.DataFrame(rows))


def _feedback_section(engine: Engine, name: str, version: str) -> Feedback:
    from crimejob.config import get_settings
    from crimejob.grid.gridstore import aggregated_weeks, contiguous_since, load_history
    from crimejob.models.forecasters import BASELINES, get_forecaster
    from crimejob.models.registry import get_version, load_forecaster
    from crimejob.serving.feedback import format_check, run_check

    weeks = aggregated_weeks(engine)
    first = contiguous_since(engine, weeks[-1]) if weeks else None
    run = [w for w in weeks if first is not None and w >= first][-60:]
    if len(run) < 8:
        return Feedback(
            ("_Not run: fewer than 8 consecutive aggregated weeks to calibrate the world._",)
        )
    history = load_history(engine, run[-1], since=run[0])
    forecasters = {b: get_forecaster(b) for b in BASELINES}
    if version != BASELINE_VERSION:
        forecasters = {
            name: load_forecaster(get_version(engine, name, int(version))),
            **forecasters,
        }
    weeks = get_settings().card_feedback_weeks
    rows = run_check(forecasters, history, weeks=weeks, seeds=1)
    lines = (
        f"A {weeks}-week simulation calibrated to the year of counts through {run[-1]} "
        "(`crimejob.serving.feedback`): patrols go to the flagged 5%, the public reports half "
        "of all incidents, patrols find half of the rest in flagged cells, and the true hotspots "
        "drift. `all_records` feeds the model every police record; `public_only` only the "
        "public's reports (this project's design). Higher `stuck` and lower `truthPEI` under "
        "`all_records` than under `public_only` is the feedback loop at work; `lift` is how "
        "much the flags inflate their own evidence.",
        "",
        "```",
        format_check(rows),
        "```",
    )
    return Feedback(lines, run[-1])


def stored_feedback(engine: Engine, model_name: str, version: str) -> Feedback | None:
    """The feedback-loop check of the version's stored card, when it was calibrated to
    counts at most :data:`FEEDBACK_REUSE_WEEKS` weeks older than the newest aggregated
    week; else None (rerun it)."""
    from crimejob.grid.gridstore import aggregated_weeks

    with engine.connect() as conn:
        row = conn.execute(
            sa.text(
                "SELECT feedback, feedback_through FROM ml.model_cards "
                "WHERE model_name = :m AND model_version = :v AND feedback IS NOT NULL "
                "AND feedback_through IS NOT NULL"
            ),
            {"m": model_name, "v": str(version)},
        ).first()
    weeks = aggregated_weeks(engine)
    if row is None or not weeks:
        return None
    if row.feedback_through < weeks[-1] - timedelta(weeks=FEEDBACK_REUSE_WEEKS):
        return None
    return Feedback(tuple(row.feedback.split("\n")), row.feedback_through)


def _data_section(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        weeks = conn.execute(
            sa.text(
                "SELECT min(week_start) AS first, max(week_start) AS last, count(*) AS n, "
                "count(*) FILTER (WHERE nibrs_incidents > 0) AS nibrs "
                "FROM grid.weeks"
            )
        ).first()
        lag = conn.execute(
            sa.text(
                "SELECT max((target_week - history_through) / 7) AS horizon FROM ml.forecasts "
                "WHERE is_production AND target_week = (SELECT max(target_week) FROM ml.forecasts)"
            )
        ).first()
        divisions = conn.execute(sa.text("SELECT count(DISTINCT area_code) FROM grid.cell_areas"))
        n_divisions = divisions.scalar_one()
    lines = [
        f"- Source: LAPD incident records (legacy dataset and NIBRS), aggregated into "
        f"{weeks.n or 0} weeks ({weeks.first} .. {weeks.last}) on the 60 x 75 grid; "
        f"{n_divisions} LAPD divisions mapped to cells. Target: violent incidents (FBI Part I "
        "violent) per cell and week.",
        "- **The 2024 NIBRS break.** LAPD moved to NIBRS on 2024-03-07; legacy and NIBRS counts "
        f"are different series ({weeks.nibrs or 0} of the weeks carry NIBRS records). A level "
        "change across the break is a change in recording, not in crime.",
        "- **The publication lag.** New records arrive about two weeks late; the forecast is "
        "made from the newest complete week"
        + (f", {int(lag.horizon)} week(s) before its target." if lag and lag.horizon else "."),
        "- Late reports keep changing past weeks; scores are recomputed when counts change.",
        "- About a third to two fifths of the cells are LAPD territory; the rest (ocean, "
        "mountains, other cities) has no records, ever.",
        "- Records reflect what was reported to or found by the police, not all crime.",
    ]
    return lines


def build_card(
    engine: Engine,
    model_name: str | None = None,
    version: str | None = None,
    feedback: Feedback | None = None,
) -> ModelCard:
    """The card of ``model_name`` ``version`` (default: the model production uses now),
    every section from the database now; ``feedback``: the feedback-loop check taken from
    the version's stored card (:func:`stored_feedback`) instead of run again."""
    if model_name is None:
        model_name, version = production_model(engine)
    version = str(version or BASELINE_VERSION)
    label = model_name + (" (baseline)" if version == BASELINE_VERSION else f" v{version}")
    scores, areas = _scoreboard(engine, model_name)
    lines = [
        f"# Model card: {label}",
        "",
        f"Generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by `crimejob card` from the database.",
        "",
        "## Intended use",
        "",
        "Place-based, weekly forecasts of violent incidents for each cell of a 60 x 75 grid over "
        "Los Angeles, for resource planning: where to look, where to offer services, where to "
        "expect demand next week. Read beside the baselines and the intervals, by analysts who "
        "know the area.",
        "",
        "## Out of scope",
        "",
        "- Anything about individuals: the model knows cells and weeks, never people.",
        "- Enforcement decisions without human review: a flagged cell is a forecast of counts, "
        "not evidence about anyone in it.",
        "- Areas outside LAPD territory and crime types other than the violent ones counted.",
        "- Reading a flag as certain: see the 90% intervals and P(at least one) per cell.",
        "",
        "## Model",
        "",
        *_version_section(engine, model_name, version),
        "",
        "## Data and known breaks",
        "",
        *_data_section(engine),
        "",
        "## Metrics against every baseline",
        "",
    ]
    if scores.empty:
        lines.append(
            f"No scored week with {model_name} in production yet: the numbers above (the "
            "gate's) are the only out-of-sample record."
        )
    else:
        weeks = scores["target_week"].nunique()
        board = scores.groupby("model_name")[[c for c, _, _ in _BOARD]].mean().reset_index()
        board = board.rename(columns={c: label for c, label, _ in _BOARD})
        lines += [
            f"Means over the {weeks} scored week(s) {scores.target_week.min()} .. "
            f"{scores.target_week.max()} with {model_name} in production; every model on the "
            "same weeks and actuals.",
            "",
            _table(board),
            "",
            "Paired differences, production - baseline (negative deviance and positive PEI "
            "favour production; within two standard errors is inside the noise):",
            "",
            _table(_paired(scores, model_name, "poisson_deviance")),
            "",
            _table(_paired(scores, model_name, "pei_5pct")),
        ]
    lines += ["", "## Errors by division", ""]
    production_areas = areas[areas["model_name"] == model_name]
    if production_areas.empty:
        lines.append("_No division-level scores yet._")
    else:
        by_area = (
            production_areas.groupby("area_name")[
                ["mae", "poisson_deviance", "pei_5pct", "coverage_90", "actual_total"]
            ]
            .mean()
            .reset_index()
            .sort_values("poisson_deviance", ascending=False)
        )
        spread = scores[scores["model_name"] == model_name][
            ["area_pei_5pct_spread", "area_deviance_spread"]
        ].mean()
        lines += [
            "Means per week (each division judged at 5% of its own cells), worst deviance first. "
            f"Mean weekly spread across divisions: PEI@5% {spread.iloc[0]:.3f}, Poisson "
            f"deviance {spread.iloc[1]:.4f}.",
            "",
            _table(by_area),
        ]
    lines += ["", "## Calibration", ""]
    if not scores.empty:
        own = scores[scores["model_name"] == model_name]
        lines += [
            "- Mass ratio (expected / actual incidents, citywide): mean "
            f"{own.mass_ratio.mean():.3f}.",
            f"- 90% intervals: {own.coverage_90_active.mean():.3f} of active cells inside "
            f"(conservative, at least 0.90 when calibrated); randomised-PIT coverage "
            f"{own.pit_coverage_90.mean():.3f} (0.90 when calibrated); dispersion "
            f"{own.dispersion.mean():.3f} (0 = Poisson).",
        ]
    lines += ["", "Reliability, LAPD cells of every scored week, by decile of the forecast:", ""]
    lines += [_reliability(engine, model_name)]
    lines += ["", "## Stability", ""]
    if scores.empty:
        lines.append("_No scored week yet._")
    else:
        stab = scores.groupby("model_name")[["jaccard_1pct", "jaccard_5pct"]].mean().reset_index()
        lines += [
            "Week-to-week overlap of the flagged cells (weighted Jaccard; 1 = the same cells):",
            "",
            _table(stab),
        ]
    lines += ["", "## Feedback loop", ""]
    if feedback is not None:
        lines += [
            f"_The check of this version's previous card, calibrated to the counts through "
            f"{feedback.through}: a backfill's card reruns it only when those are more than "
            f"{FEEDBACK_REUSE_WEEKS} weeks older than the newest (`crimejob card --store` "
            "reruns it now)._",
            "",
        ]
    else:
        try:
            feedback = _feedback_section(engine, model_name, version)
        except DataError as exc:
            feedback = Feedback((f"_Not run: {exc}_",))
    lines += feedback.lines
    lines += [
        "",
        "**What the design does about it.** The model is meant to learn from incidents the "
        "public reports, not from what patrols find: offenses that only arise from police "
        "activity (LAPD `crm_cd` 231 assault with a deadly weapon on a police officer, "
        "437 resisting arrest, 623 battery on a police officer, 884, 890) are police-initiated: "
        "incidents made only of them are left out of every count the models train and are "
        "scored on (raw.police_initiated_codes; docs/accountability.md says what could be "
        "verified). Scores are also recomputed as late reports arrive, and every "
        "forecast is shown beside the baselines.",
        "",
    ]
    return ModelCard(model_name, version, "\n".join(lines), feedback)


def card_path(engine: Engine, card: ModelCard) -> Path:
    """Where the card file lives: beside the version's artifact (baselines: under models/)."""
    from crimejob.models.registry import get_version, model_dir

    if card.model_version == BASELINE_VERSION:
        return model_dir() / "baselines" / f"{card.model_name}.card.md"
    version = get_version(engine, card.model_name, int(card.model_version))
    return Path(version.artifact_path).with_suffix(".card.md")


def store_card(engine: Engine, card: ModelCard) -> Path:
    """Write the card beside the version and upsert it in ``ml.model_cards``."""
    path = card_path(engine, card)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(card.text)
    through = card.feedback.through if card.feedback is not None else None
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO ml.model_cards "
                "(model_name, model_version, card, path, feedback, feedback_through) "
                "VALUES (:m, :v, :c, :p, :f, :t) ON CONFLICT (model_name, model_version) "
                "DO UPDATE SET card = EXCLUDED.card, path = EXCLUDED.path, generated_at = now(), "
                "feedback = EXCLUDED.feedback, feedback_through = EXCLUDED.feedback_through"
            ),
            {
                "m": card.model_name,
                "v": card.model_version,
                "c": card.text,
                "p": str(path),
                # only a check that ran is kept for reuse
                "f": "\n".join(card.feedback.lines) if through is not None else None,
                "t": through,
            },
        )
    return path


def write_card(engine: Engine, out: Path | None = None, store: bool = False) -> ModelCard:
    """``crimejob card``: the production model's card, to ``out`` and/or the registry."""
    card = build_card(engine)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(card.text)
    if store:
        store_card(engine, card)
    return card


_PRODUCTION_OF = sa.text(
    "SELECT DISTINCT model_name, model_version FROM ml.forecasts "
    "WHERE target_week = :w AND is_production"
)


def refresh_backfill_cards(engine: Engine, target_weeks: list[date]) -> dict[str, Any]:
    """The card a backfill deferred (its runs pass ``card=False``): that of the model
    production for the newest of ``target_weeks``, built once at the end when production
    changed hands in those weeks or the model has no card, as the weekly runs would have
    left it, only built from the database as it is now (which is what a card describes).
    Before, a backfill rebuilt a card, with a 26-week feedback simulation of every
    baseline, each time production changed hands; the card of a model production only
    in the middle of a backfill is built when it is production again (or by
    ``crimejob card --store``). The feedback-loop check (most of a card's time: lightgbm
    refitted in a 26-week simulation) is taken from the version's stored card when that
    was calibrated within :data:`FEEDBACK_REUSE_WEEKS` weeks of the newest counts, as after
    a short backfill that ends with the model production before it (the card says so);
    every other section is built from the database now."""
    weeks = sorted(target_weeks)
    if not weeks:
        return {"card": "no week"}
    with engine.connect() as conn:
        productions = [conn.execute(_PRODUCTION_OF, {"w": w}).first() for w in weeks]
        before = conn.execute(_PRODUCTION_OF, {"w": weeks[0] - timedelta(weeks=1)}).first()
    now = productions[-1]
    if now is None:
        return {"card": "no production forecast"}
    changed = any(
        p is not None and (b is None or tuple(b) != tuple(p))
        for b, p in zip([before, *productions[:-1]], productions, strict=True)
    )
    if changed:
        return _store_production_card(engine, now, reuse_feedback=True)
    return refresh_production_card(engine, weeks[-1])


def _store_production_card(engine: Engine, now, reuse_feedback: bool = False) -> dict[str, Any]:
    try:
        feedback = (
            stored_feedback(engine, now.model_name, now.model_version) if reuse_feedback else None
        )
        card = build_card(engine, now.model_name, now.model_version, feedback)
        path = store_card(engine, card)
    except Exception as exc:  # noqa: BLE001 - the forecast is published; the card can wait
        log.exception("model card of %s %s could not be built", now.model_name, now.model_version)
        return {"card": f"failed: {exc}"}
    log.info("production is %s %s: model card stored at %s", *now, path)
    return {"card": str(path)}


def refresh_production_card(engine: Engine, target_week: date) -> dict[str, Any]:
    """After the forecast of ``target_week`` is written: regenerate and store the card of
    its production model when production changed since the week before (a promotion) or
    the model has no card yet. Never fails the forecast: a card that cannot be built is
    logged and reported (``crimejob card --store`` rebuilds it)."""
    with engine.connect() as conn:
        now = conn.execute(_PRODUCTION_OF, {"w": target_week}).first()
        before = conn.execute(_PRODUCTION_OF, {"w": target_week - timedelta(weeks=1)}).first()
        if now is None:
            return {"card": "no production forecast"}
        stored = conn.execute(
            sa.text("SELECT 1 FROM ml.model_cards WHERE model_name = :m AND model_version = :v"),
            {"m": now.model_name, "v": now.model_version},
        ).first()
    changed = before is None or tuple(before) != tuple(now)
    if stored is not None and not changed:
        return {"card": "unchanged"}
    return _store_production_card(engine, now)
