-- Repeatable: dropped and re-created by every `crimejob db upgrade`. Edit this file to change
-- the view. Names and columns are the contract BI tools rely on; new columns go at the end.

CREATE VIEW bi.weekly_category_counts AS
SELECT week_start, cell_id, category, incidents
FROM grid.weekly_categories;
COMMENT ON VIEW bi.weekly_category_counts IS 'Incidents per week, cell and crime category (docs/categories.md): an incident counts once, in the category of its primary offense. Sparse: no row means zero. The four violent categories sum to bi.weekly_counts violent_count.';
COMMENT ON COLUMN bi.weekly_category_counts.week_start IS 'Monday of the week the incidents occurred in.';
COMMENT ON COLUMN bi.weekly_category_counts.cell_id IS 'Grid cell, see bi.grid_cells.';
COMMENT ON COLUMN bi.weekly_category_counts.category IS 'homicide, rape, robbery, aggravated_assault (violent); burglary, theft, motor_vehicle_theft, simple_assault, vandalism, other.';
COMMENT ON COLUMN bi.weekly_category_counts.incidents IS 'Incidents (legacy reports or NIBRS cases) whose primary offense is of this category: legacy Crm Cd, NIBRS the most serious offense of the case by the FBI hierarchy.';
