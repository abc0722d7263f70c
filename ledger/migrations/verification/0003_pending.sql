-- Records waiting for their subject's earlier event (consumers/exactly_once.py): a batch
-- label's later events are keyed by its serial, its BatchIssued by the batch id, so they
-- sit on different partitions and a later event may be read first. It is parked here, in
-- the same transaction as the offsets, and applied (and deleted) in the transaction that
-- applies what it waited for, in log order; whatever stays here is still waiting.
CREATE TABLE IF NOT EXISTS {schema}.pending (
    topic text NOT NULL,
    partition int NOT NULL,
    "offset" bigint NOT NULL,
    log_index bigint,
    subject text NOT NULL,
    key bytea,
    value bytea,
    header_names text[] NOT NULL,
    header_values bytea[] NOT NULL,
    detail text NOT NULL,
    parked_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, partition, "offset")
);
CREATE INDEX IF NOT EXISTS pending_subject_idx ON {schema}.pending (subject);
