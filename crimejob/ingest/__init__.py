"""Getting the sources in: LAPD crime records (SODA) and NOAA daily weather (NCEI) into
raw.*, and the records refused with the reason."""
