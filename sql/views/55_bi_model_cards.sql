-- Repeatable: dropped and re-created by every `crimejob db upgrade`. Edit this file to change
-- the view. Names and columns are the contract BI tools rely on; new columns go at the end.

CREATE VIEW bi.model_cards AS
SELECT model_name, model_version, generated_at, card, path
FROM ml.model_cards;
COMMENT ON VIEW bi.model_cards IS 'The model card (Markdown) of each production version: intended use, scope, data and its breaks, metrics against every baseline, errors by division, calibration, stability, the feedback-loop check. Regenerated on every promotion.';
COMMENT ON COLUMN bi.model_cards.model_name IS 'Model name.';
COMMENT ON COLUMN bi.model_cards.model_version IS 'Registry version, or baseline.';
COMMENT ON COLUMN bi.model_cards.generated_at IS 'When the card was generated.';
COMMENT ON COLUMN bi.model_cards.card IS 'The card as Markdown text.';
COMMENT ON COLUMN bi.model_cards.path IS 'The .card.md file stored beside the version''s artifact.';
