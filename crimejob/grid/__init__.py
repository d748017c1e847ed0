"""The 60 x 75 grid: cells, weeks, and the weekly grid rows built from the raw records
(counts per cell, crime category and week, as-of histories, the publication lag, the 2024
series break)."""
