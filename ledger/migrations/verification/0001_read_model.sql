-- The verification read model (projections/verification.py) in the schema {schema}: laid
-- out by ledger/migrate.py with {schema} replaced by the read model's schema name
-- ("verification" for the projector, "alerts" for the detector, which runs the same
-- projector in its own schema; tests rebuild into others). IF NOT EXISTS: a read model
-- made before migrations is adopted as it is.
CREATE SCHEMA IF NOT EXISTS {schema};

-- Where the exactly-once consumer keeps its place (projections/offsets.py), committed in
-- the same transaction as the read model's writes, and the records it refused.
CREATE TABLE IF NOT EXISTS {schema}.consumer_offsets (
    topic text NOT NULL,
    partition int NOT NULL,
    next_offset bigint NOT NULL,
    PRIMARY KEY (topic, partition)
);
CREATE TABLE IF NOT EXISTS {schema}.quarantine (
    id bigserial PRIMARY KEY,
    topic text NOT NULL,
    partition int NOT NULL,
    "offset" bigint NOT NULL,
    key bytea,
    value bytea,
    code text NOT NULL,
    detail text NOT NULL,
    quarantined_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (topic, partition, "offset")
);

-- Per label its lifecycle state, scan count and, while packed, its container.
CREATE TABLE IF NOT EXISTS {schema}.labels (
    serial text PRIMARY KEY,
    gtin text NOT NULL, lot text NOT NULL, product text NOT NULL, producer text NOT NULL,
    expiry text, pin_hash text, status text NOT NULL, custodian text, consignee text,
    territory text, channel text, recalled boolean NOT NULL, counterfeit boolean NOT NULL,
    issued_at timestamptz, seq bigint NOT NULL, head bytea NOT NULL,
    scan_count bigint NOT NULL DEFAULT 0, first_scanned_at timestamptz, last_event_at timestamptz
);
CREATE INDEX IF NOT EXISTS labels_lot_idx ON {schema}.labels (gtin, lot);
ALTER TABLE {schema}.labels ADD COLUMN IF NOT EXISTS container text;

-- Per lot its recall state and (projections/lots.py) what it was made from.
CREATE TABLE IF NOT EXISTS {schema}.lots (
    gtin text NOT NULL, lot text NOT NULL, recalled boolean NOT NULL, reason text,
    seq bigint NOT NULL, head bytea NOT NULL,
    PRIMARY KEY (gtin, lot)
);
ALTER TABLE {schema}.lots ADD COLUMN IF NOT EXISTS producer text;
ALTER TABLE {schema}.lots ADD COLUMN IF NOT EXISTS product text;
ALTER TABLE {schema}.lots ADD COLUMN IF NOT EXISTS certificates text[] NOT NULL DEFAULT '{}';
ALTER TABLE {schema}.lots ADD COLUMN IF NOT EXISTS inputs text[] NOT NULL DEFAULT '{}';
CREATE TABLE IF NOT EXISTS {schema}.lot_inputs (
    output_lot text NOT NULL, input_lot text NOT NULL, log_index bigint,
    PRIMARY KEY (output_lot, input_lot)
);
CREATE INDEX IF NOT EXISTS lot_inputs_input_idx ON {schema}.lot_inputs (input_lot);

-- Every applied event of every subject (a label's trail).
CREATE TABLE IF NOT EXISTS {schema}.events (
    subject_type text NOT NULL, subject text NOT NULL, seq bigint NOT NULL,
    event_id text NOT NULL, kind text NOT NULL, actor text NOT NULL, region text,
    occurred_at timestamptz NOT NULL, hash bytea NOT NULL, log_index bigint,
    PRIMARY KEY (subject_type, subject, seq)
);

-- The signed state of each alert chain (projections/alert_chains.py).
CREATE TABLE IF NOT EXISTS {schema}.alert_chains (
    alert_id text PRIMARY KEY, alert_kind text NOT NULL, serial text, producer text,
    status text NOT NULL, resolution text, seq bigint NOT NULL, head bytea NOT NULL
);

-- Containers and who was packed in which, when (projections/containers.py).
CREATE TABLE IF NOT EXISTS {schema}.containers (
    sscc text PRIMARY KEY, level text NOT NULL, producer text NOT NULL, status text NOT NULL,
    custodian text, consignee text, territory text, channel text, recalled boolean NOT NULL,
    counterfeit boolean NOT NULL, container text, contents bigint NOT NULL,
    seq bigint NOT NULL, head bytea NOT NULL
);
CREATE TABLE IF NOT EXISTS {schema}.memberships (
    child_type text NOT NULL, child text NOT NULL, container text NOT NULL,
    packed_seq bigint NOT NULL, packed_index bigint, packed_at timestamptz NOT NULL,
    unpacked_seq bigint, unpacked_index bigint, unpacked_at timestamptz,
    PRIMARY KEY (child_type, child, packed_seq)
);
CREATE INDEX IF NOT EXISTS memberships_container_idx ON {schema}.memberships (container);
