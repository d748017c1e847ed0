"""Clients for the job's external sources: LAPD (SODA) and NOAA NCEI."""
