-- The detector's own tables (projections/alerts.py, projections/alert_transitions.py) in the
-- schema {schema}, next to the verification tables it runs on (laid out first, from
-- ledger/migrations/verification/). {schema} is replaced by ledger/migrate.py.
CREATE TABLE IF NOT EXISTS {schema}.watch (serial text PRIMARY KEY, data jsonb NOT NULL);
CREATE TABLE IF NOT EXISTS {schema}.alerts (
    id bigserial PRIMARY KEY,
    alert_id uuid NOT NULL,
    dedupe_key text NOT NULL,
    kind text NOT NULL,
    severity text NOT NULL,
    serial text, producer text, gtin text,
    region text, province text, lat double precision, lon double precision,
    gateway text,
    evidence text[] NOT NULL,
    sightings int NOT NULL,
    first_seen timestamptz NOT NULL,
    last_seen timestamptz NOT NULL,
    state text NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'acknowledged', 'resolved')),
    resolution text CHECK (resolution IN ('false_positive', 'confirmed')),
    detail jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE {schema}.alerts ADD COLUMN IF NOT EXISTS alert_id uuid;  -- schemas made before alert ids: rebuild to fill them
CREATE UNIQUE INDEX IF NOT EXISTS alerts_alert_id_idx ON {schema}.alerts (alert_id);
-- One incident, one alert: at most one alert per key that is not resolved.
CREATE UNIQUE INDEX IF NOT EXISTS alerts_one_per_incident ON {schema}.alerts (dedupe_key) WHERE state <> 'resolved';
CREATE INDEX IF NOT EXISTS alerts_kind_idx ON {schema}.alerts (kind, id);
CREATE INDEX IF NOT EXISTS alerts_serial_idx ON {schema}.alerts (serial);
CREATE INDEX IF NOT EXISTS alerts_producer_idx ON {schema}.alerts (producer, id);
CREATE INDEX IF NOT EXISTS alerts_first_seen_idx ON {schema}.alerts (first_seen);
-- Scans of never-issued codes, clustered by channel and city, and the inbox tail's position.
CREATE TABLE IF NOT EXISTS {schema}.unknown_scans (
    inbox_id bigint PRIMARY KEY, event_id text NOT NULL, serial text NOT NULL, channel text NOT NULL,
    region text, cluster text NOT NULL, occurred_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS unknown_scans_cluster_idx ON {schema}.unknown_scans (cluster, occurred_at);
CREATE TABLE IF NOT EXISTS {schema}.inbox_position (name text PRIMARY KEY, last_id bigint NOT NULL);
-- Signed acknowledgements and resolutions of alerts, as checked (projections/alert_transitions.py).
CREATE TABLE IF NOT EXISTS {schema}.alert_transitions (
    alert_id uuid NOT NULL, seq bigint NOT NULL, event_id text NOT NULL, kind text NOT NULL,
    actor text NOT NULL, producer text, alert_kind text, serial text, resolution text, note text,
    occurred_at timestamptz NOT NULL, log_index bigint,
    status text NOT NULL CHECK (status IN ('applied', 'pending', 'rejected')), reason text,
    PRIMARY KEY (alert_id, seq)
);
CREATE INDEX IF NOT EXISTS alert_transitions_pending_idx ON {schema}.alert_transitions (alert_id) WHERE status = 'pending';
