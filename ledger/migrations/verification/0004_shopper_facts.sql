-- What a shopper's page shows beyond the verification view (projections/shopper_facts.py
-- writes these in the projector's transaction; projections/shopper_details.py reads them).

-- A label recalled by its own Recalled event: the signed reason (the hazard the page shows).
CREATE TABLE IF NOT EXISTS {schema}.label_recalls (
    serial text PRIMARY KEY,
    reason text NOT NULL,
    recalled_at timestamptz NOT NULL,
    region text,
    seq bigint NOT NULL
);
