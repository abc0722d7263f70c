-- Labels whose stored chain in the ledger's event store no longer matches the hashes the
-- projector verified and published (issue 21). Written by the integrity sweep
-- (projections/integrity_sweep.py), read by every verification read (projections/checked_view.py):
-- a flagged label is checked precisely on each read and never answers "genuine" while the
-- mismatch lasts. Not written by the projector: a rebuild empties it and the next pass refills it.
CREATE TABLE IF NOT EXISTS {schema}.label_integrity (
    serial text PRIMARY KEY,
    problem text NOT NULL,
    found_at timestamptz NOT NULL DEFAULT now()
);
