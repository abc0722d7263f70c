-- Batch events in the verification read model (projections/verification.py): one row per
-- applied batch event (its labels get their rows in labels and events, written in the same
-- transaction as the consumer's offsets, so a batch is in the read model whole or not at all).
CREATE TABLE IF NOT EXISTS {schema}.batches (
    batch_id text PRIMARY KEY,
    event_id text NOT NULL UNIQUE,
    kind text NOT NULL,
    actor text NOT NULL,
    count integer NOT NULL,
    labels_root bytea NOT NULL,
    hash bytea NOT NULL,
    log_index bigint,
    occurred_at timestamptz NOT NULL
);
