-- Batch movements (event.v3 BatchShipped, BatchReceived, BatchRecalled, BatchDecommissioned;
-- ledger/batches.py): a label's step in a batch event after its issuance. Like issuance
-- (public.label_heads), the batch event is stored once on its own chain and each label
-- gets one small row here: its position in its own chain (seq), its step hash and the leaf
-- of the batch that proves it. The label's single events continue at version seq + 2 of its
-- event-store chain; the writers of both paths take the event store's table lock and refuse
-- a (chain, seq) the other already holds, so a chain never forks across the two paths.
CREATE TABLE IF NOT EXISTS public.label_steps (
    chain uuid NOT NULL,
    seq bigint NOT NULL,
    head bytea NOT NULL,
    batch_event text NOT NULL,
    leaf integer NOT NULL,
    PRIMARY KEY (chain, seq)
);

-- The opening (salt and confidential fields) of a batch body's ``sealed`` commitment. Kept
-- apart from the event store, which serves bodies: only the API's entitled readers (the
-- signer, the labels' producer, the consignee, regulators) and the relay (for the
-- ACL-guarded event topic) read it. The public sees only the 32-byte commitment.
CREATE TABLE IF NOT EXISTS public.batch_openings (
    event_id text PRIMARY KEY,
    opening bytea NOT NULL
);
