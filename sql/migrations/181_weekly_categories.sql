-- Crime categories in the grid rows (issue 11). The code -> category mapping is written
-- once in crimejob/categories.py and synced into grid.offense_categories by every
-- aggregation; grid.weekly_categories is replaced per week like grid.weekly.

-- Every mapped offense code: its category and the category's hierarchy rank
-- (1 homicide .. 4 aggravated assault = the violent four, 10 other).
CREATE TABLE grid.offense_categories (
    series   text NOT NULL CHECK (series IN ('legacy', 'nibrs')),
    code     text NOT NULL,
    category text NOT NULL,
    rank     smallint NOT NULL CHECK (rank BETWEEN 1 AND 10),
    PRIMARY KEY (series, code)
);

-- Per week, cell and category: incidents whose primary offense is of that category.
-- Sparse: a (week, cell, category) with no incident has no row (it is zero).
CREATE TABLE grid.weekly_categories (
    week_start date NOT NULL CHECK (extract(isodow FROM week_start) = 1),
    cell_id    integer NOT NULL CHECK (cell_id BETWEEN 0 AND 4499),
    category   text NOT NULL,
    incidents  integer NOT NULL CHECK (incidents > 0),
    PRIMARY KEY (week_start, cell_id, category)
);
