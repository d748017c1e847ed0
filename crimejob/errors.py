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


class ConfigError(CrimejobError, ValueError):
    """A setting (an environment variable) has a value the job cannot use; names the setting."""
