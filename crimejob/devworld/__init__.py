"""The LA development world: a simulated Los Angeles calibrated to real LAPD figures.

Models are developed and judged on it, tests and benchmarks use it, and
``crimejob demo`` serves it where no real data can be reached. It is generated
from the parameters in ``params.json`` (fitted intensities and rates, never
the real records), refitted from ``../shared/data`` by
``python -m crimejob.devworld.calibrate``. See :mod:`crimejob.devworld.world`
for what is simulated and :mod:`crimejob.devworld.calibrate` for the real
figure behind each parameter.

    from crimejob.devworld import la_world
    world = la_world(seed=0, start=date(2019, 1, 7), weeks=365)
    history = world.history()            # GridHistory: crime, incidents, weather, nibrs_share
    records = world.records(date(2024, 3, 4), date(2024, 3, 10))  # one row per incident
"""

from crimejob.devworld.world import LAWorld, la_world, load_params

__all__ = ["LAWorld", "la_world", "load_params"]
