"""Errors the job expects and reports in one clear line (the CLI prints them, exit 1)."""


class CrimejobError(Exception):
    """A failure a user can act on: a source down, a malformed file, missing history."""


class SourceError(CrimejobError):
    """A source failed after its retries, or sent something we cannot trust.

    Raised before anything from that window is committed, so no partial data
    (and no forecast from stale data) is written.
    """


class DataError(CrimejobError):
    """The data in the database cannot support the step asked for (gaps, too few weeks)."""


class UsageError(CrimejobError, ValueError):
    """Arguments that cannot mean anything (a range whose start is after its end): exit 2."""


def check_range(start, end, what: str = "") -> None:
    """A ``--start`` after ``--end`` is a usage error, not an empty range done quietly."""
    if start is not None and end is not None and start > end:
        where = f"{what}: " if what else ""
        raise UsageError(f"{where}--start {start} is after --end {end}")


class UnknownModelError(CrimejobError, ValueError):
    """A model name no forecaster answers to (``--model``, ``--models``, ``CRIMEJOB_MODEL``)."""


class ConfigError(CrimejobError, ValueError):
    """A setting (an environment variable) has a value the job cannot use; names the setting."""
