-- A model card's feedback-loop check (a 26-week simulation, lightgbm refitted in it: most
-- of a card's build time) stored beside the card with the last week of counts it was
-- calibrated to, so that the card a backfill builds at its end can take the check from
-- the version's stored card when that was calibrated at most 13 weeks before the counts
-- now (crimejob/serving/cards.py); every other section is built from the database then.
ALTER TABLE ml.model_cards
    ADD COLUMN feedback         text,   -- the card's "Feedback loop" section (Markdown)
    ADD COLUMN feedback_through date;   -- the last week of counts the check was calibrated to
