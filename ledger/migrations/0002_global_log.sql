-- The global log (ledger/transparency/log.py): every accepted event with a dense index in
-- commit order, given by the relay's sequencer before it publishes the event.
CREATE TABLE IF NOT EXISTS public.log_entries (
    log_index bigint PRIMARY KEY,
    notification_id bigint NOT NULL UNIQUE,
    subject_type text NOT NULL,
    subject text NOT NULL,
    seq bigint NOT NULL,
    event_id text NOT NULL,
    topic text NOT NULL,
    partition int NOT NULL,
    value bytea NOT NULL
);
CREATE INDEX IF NOT EXISTS log_entries_subject_idx ON public.log_entries (subject_type, subject);

-- The log's Merkle tree (ledger/transparency/tree.py): the node at (level, idx) covers leaves
-- [idx * 2^level, (idx + 1) * 2^level); written once, when its subtree is complete.
CREATE TABLE IF NOT EXISTS public.merkle_nodes (
    level smallint NOT NULL,
    idx bigint NOT NULL,
    hash bytea NOT NULL,
    PRIMARY KEY (level, idx)
);

-- Signed checkpoints of the tree the relay has published (consumers/checkpointer.py).
CREATE TABLE IF NOT EXISTS public.checkpoints (
    id bigserial PRIMARY KEY,
    size bigint NOT NULL,
    root bytea NOT NULL,
    timestamp_ms bigint NOT NULL,
    origin text NOT NULL,
    key_id text NOT NULL,
    note text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
