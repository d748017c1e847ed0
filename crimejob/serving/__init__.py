"""What analysts read: next week's forecasts and their scores in Postgres, division and
category roll-ups, model cards, and the maps and plots."""
