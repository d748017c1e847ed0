"""Harm weights per crime category: the Cambridge Crime Harm Index idea, under California law.

Why: a count treats a homicide and a shoplifting alike. The Cambridge Crime Harm
Index (Sherman, Neyroud & Neyroud 2016, "The Cambridge Crime Harm Index:
Measuring Total Harm from Crime Based on Sentencing Guidelines", Policing 10(3))
weighs each crime by the days of imprisonment a first offender would get for it
under the sentencing guidelines' starting point. California has no guideline
grid; its determinate sentencing law gives each felony a triad of terms, and
since 2022 a court may not go above the middle term unless aggravating facts are
proven (Penal Code 1170(b)(1)-(2)). So the weight of a category is, for its most
common offence in LAPD's codes:

- a felony (or a wobbler, charged as a felony): the **middle term** of its triad,
  in days (365 a year);
- murder (a life term, no triad): the **minimum term** of second-degree murder;
- a misdemeanour: the **maximum county-jail term** (Penal Code 19: six months
  unless the statute says otherwise).

Every number, its statute and the judgement behind it are in :data:`HARM_WEIGHTS`
and docs/categories.md. The weights rank severity; they are not a sentence any
particular incident would get.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from crimejob.grid.categories import CATEGORIES


@dataclass(frozen=True)
class HarmWeight:
    days: int
    offence: str
    source: str


YEAR = 365

HARM_WEIGHTS: dict[str, HarmWeight] = {
    "homicide": HarmWeight(
        15 * YEAR,
        "second-degree murder, 15 years to life (minimum term)",
        "Cal. Penal Code 190(a)",
    ),
    "rape": HarmWeight(6 * YEAR, "rape, 3, 6 or 8 years (middle term)", "Cal. Penal Code 264(a)"),
    "robbery": HarmWeight(
        3 * YEAR,
        "second-degree robbery, 2, 3 or 5 years (middle term)",
        "Cal. Penal Code 213(a)(2)",
    ),
    "aggravated_assault": HarmWeight(
        3 * YEAR,
        "assault with a deadly weapon, 2, 3 or 4 years (middle term)",
        "Cal. Penal Code 245(a)(1)",
    ),
    "burglary": HarmWeight(
        2 * YEAR,
        "second-degree burglary, 16 months, 2 or 3 years (middle term); first-degree "
        "(residential) burglary would be 4 years (PC 461(a))",
        "Cal. Penal Code 461(b), 1170(h)",
    ),
    "theft": HarmWeight(
        YEAR // 2,
        "petty theft, misdemeanour, up to 6 months in county jail",
        "Cal. Penal Code 490, 488",
    ),
    "motor_vehicle_theft": HarmWeight(
        2 * YEAR,
        "unlawful taking of a vehicle, 16 months, 2 or 3 years (middle term)",
        "Cal. Vehicle Code 10851(a); Cal. Penal Code 1170(h)",
    ),
    "simple_assault": HarmWeight(
        YEAR // 2,
        "battery, misdemeanour, up to 6 months in county jail",
        "Cal. Penal Code 243(a)",
    ),
    "vandalism": HarmWeight(
        2 * YEAR,
        "vandalism of $400 or more (LAPD's commonest vandalism code, 740), 16 months, 2 or "
        "3 years (middle term)",
        "Cal. Penal Code 594(b)(1), 1170(h)",
    ),
    "other": HarmWeight(
        YEAR // 2,
        "the default misdemeanour term, up to 6 months in county jail",
        "Cal. Penal Code 19",
    ),
}


def weights() -> np.ndarray:
    """(10,) harm weights in days, in :data:`crimejob.grid.categories.CATEGORIES` order."""
    return np.array([HARM_WEIGHTS[c].days for c in CATEGORIES], np.float64)


def severity(category_counts: np.ndarray, axis: int = 0) -> np.ndarray:
    """Severity-weighted count: the category counts (categories along ``axis``) times
    their harm weights, summed over categories (days of imprisonment)."""
    counts = np.moveaxis(np.asarray(category_counts, np.float64), axis, -1)
    return counts @ weights()
