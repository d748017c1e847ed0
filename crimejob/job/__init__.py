"""The weekly job: its ordered steps and one run of a week end to end, or a backfill."""
