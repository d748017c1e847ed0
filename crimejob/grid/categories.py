"""Crime categories: one mapping from legacy ``crm_cd`` and NIBRS ``nibr_code`` to ten kinds.

Why one module: the grid rows (``grid.weekly_categories``), the type-mix forecast
and the severity weights all speak of the same ten categories, and the violent
four must add up to ``violent_count`` exactly. So the mapping is written once
here, synced to ``grid.offense_categories`` by every aggregation, and checked
against the violent code sets of the adapters (:mod:`crimejob.ingest.sources.lapd`).

Rules (docs/categories.md has the reasoning and the code tables):

- A category's ``rank`` is its place in the FBI UCR hierarchy rule (homicide,
  rape, robbery, aggravated assault, burglary, larceny-theft, motor vehicle
  theft), then simple assault, vandalism and other.
- An incident's category is its primary offense: legacy ``Crm Cd`` (the first
  code of the record); a NIBRS case's most serious offense (lowest rank) over
  all its offense rows.
- A legacy report whose ``Crm Cd`` is not violent but one of ``Crm Cd 2..4`` is
  counts as violent in ``violent_count``; it takes its most serious violent code,
  so the four violent categories always sum to ``violent_count`` (measured: 0 of
  11,314 real rows in the shared samples need this).
- A code the mapping does not know is ``other`` (never violent, as in the adapters).
"""

from __future__ import annotations

import pandas as pd

from crimejob.ingest.sources.lapd import LEGACY_VIOLENT_CODES, NIBRS_VIOLENT_CODES

# In hierarchy order: the rank of a category is its position + 1.
CATEGORIES: tuple[str, ...] = (
    "homicide",
    "rape",
    "robbery",
    "aggravated_assault",
    "burglary",
    "theft",
    "motor_vehicle_theft",
    "simple_assault",
    "vandalism",
    "other",
)
VIOLENT_CATEGORIES: tuple[str, ...] = CATEGORIES[:4]
RANK: dict[str, int] = {c: i + 1 for i, c in enumerate(CATEGORIES)}
FALLBACK = "other"


def _codes(text: str) -> list[str]:
    return text.split()


# Legacy crm_cd (LAPD "Crime Data from 2020 to Present"); every code of
# ../shared/data/lapd_crm_cd_descriptions.csv.gz is listed (tests check it).
LEGACY_CATEGORY_CODES: dict[str, list[str]] = {
    "homicide": _codes("110 113"),
    "rape": _codes("121 122 815 820 821"),
    "robbery": _codes("210 220"),
    "aggravated_assault": _codes("230 231 235 236 250 251 761 926"),
    "burglary": _codes("310 320"),
    # UCR larceny-theft: burglary *from vehicle* (330, 410) is larceny, not burglary
    "theft": _codes(
        "330 331 341 343 345 347 349 350 351 352 353 410 420 421 440 441 442 443 444 445 "
        "446 450 451 452 453 470 471 473 474 475 480 485 487"
    ),
    # 433 driving without owner consent is motor vehicle theft in UCR; 522 scooters etc.
    "motor_vehicle_theft": _codes("433 510 520 522"),
    # UCR "other assaults": batteries, simple assaults, and intimidation (threats, stalking)
    "simple_assault": _codes("622 623 624 625 626 627 647 763 928 930"),
    "vandalism": _codes("740 745 924"),
    "other": _codes(
        "237 354 432 434 435 436 437 438 439 648 649 651 652 653 654 660 661 662 664 666 "
        "668 670 753 755 756 760 762 805 806 810 812 813 814 822 830 840 845 850 860 865 "
        "870 880 882 884 886 888 890 900 901 902 903 904 906 910 920 921 922 931 932 933 "
        "940 942 943 944 946 948 949 950 951 954 956 "
        # seen only in Crm Cd 2..4 of the real samples, absent from the code list
        # (LAPD's administrative 997-999 among them)
        "521 980 997 998 999"
    ),
}

# NIBRS Group A and B offense codes (FBI NIBRS User Manual, offense code table).
NIBRS_CATEGORY_CODES: dict[str, list[str]] = {
    "homicide": _codes("09A"),
    "rape": _codes("11A 11B 11C"),
    "robbery": _codes("120"),
    "aggravated_assault": _codes("13A"),
    "burglary": _codes("220"),
    "theft": _codes("23A 23B 23C 23D 23E 23F 23G 23H"),
    "motor_vehicle_theft": _codes("240"),
    "simple_assault": _codes("13B 13C"),
    "vandalism": _codes("290"),
    # 09B negligent manslaughter is not among the design's violent NIBRS codes, so it
    # stays out of homicide (the violent four must sum to violent_count); 09C is
    # justifiable homicide, not a crime
    "other": _codes(
        "09B 09C 100 11D 200 210 250 26A 26B 26C 26D 26E 26F 26G 26H 270 280 35A 35B 36A "
        "36B 370 39A 39B 39C 39D 40A 40B 40C 510 520 64A 64B 720 90A 90B 90C 90D 90E 90F "
        "90G 90H 90I 90J 90Z"
    ),
}

CODE_TABLES: dict[str, dict[str, list[str]]] = {
    "legacy": LEGACY_CATEGORY_CODES,
    "nibrs": NIBRS_CATEGORY_CODES,
}
VIOLENT_CODES: dict[str, frozenset[str]] = {
    "legacy": LEGACY_VIOLENT_CODES,
    "nibrs": NIBRS_VIOLENT_CODES,
}


def code_categories() -> pd.DataFrame:
    """Every mapped code: ``series, code, category, rank`` (what grid.offense_categories holds)."""
    rows = [
        (series, code, category, RANK[category])
        for series, table in CODE_TABLES.items()
        for category, codes in table.items()
        for code in codes
    ]
    return pd.DataFrame(rows, columns=["series", "code", "category", "rank"])


def category_of(series: str, code: str) -> str:
    """The category of one offense code; an unknown code is ``other``."""
    for category, codes in CODE_TABLES[series].items():
        if code in codes:
            return category
    return FALLBACK


def incident_category(series: str, codes: list[str]) -> str:
    """The category of an incident from its codes (legacy: in field order, Crm Cd first).

    The reference implementation of the SQL in :mod:`crimejob.grid.aggregate`, for tests.
    """
    ranks = [RANK[category_of(series, c)] for c in codes]
    best = min(ranks)
    if series == "legacy":
        violent = any(c in VIOLENT_CODES[series] for c in codes)
        if not (violent and ranks[0] > len(VIOLENT_CATEGORIES)):
            return CATEGORIES[ranks[0] - 1]
    return CATEGORIES[best - 1]
