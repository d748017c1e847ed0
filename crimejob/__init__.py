"""crimejob: weekly, place-based violent-crime forecasting for Los Angeles."""

__version__ = "0.1.0"
