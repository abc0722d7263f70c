-- Batch events (event.v3, ledger/batches.py): the write model of labels issued in batches.
-- A batch event is stored once in the event store (its own chain, subject_type batch); its
-- manifest (the label steps whose Merkle root it signs) is stored beside it, written in the
-- same transaction, and read by the relay to put it on Kafka with the event.
CREATE TABLE IF NOT EXISTS public.batch_manifests (
    event_id text PRIMARY KEY,
    batch_id text NOT NULL UNIQUE,
    manifest bytea NOT NULL
);

-- One row per label issued in a batch: its chain head (seq and step hash). A batch is one
-- set-based statement here: issuance inserts every label or (a label already exists) the
-- whole transaction is rolled back, so two writers can never both own a label's next step.
-- ``chain`` is the label's event-store chain id (ledger/store.py chain_id): the single-event
-- write path refuses to start a chain whose id is here, under the same table lock.
CREATE TABLE IF NOT EXISTS public.label_heads (
    serial text PRIMARY KEY,
    chain uuid NOT NULL UNIQUE,
    seq bigint NOT NULL,
    head bytea NOT NULL,
    producer text NOT NULL,
    batch_event text NOT NULL,
    leaf integer NOT NULL
);
