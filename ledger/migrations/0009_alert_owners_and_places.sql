-- Alerts bound to their owners (ledger/alert_owners.py): every alert the detector raises is
-- registered here with the producer it is about, in the detector's own transaction, so the
-- ledger can refuse an AlertAcknowledged / AlertResolved that names anyone else (issue 15).
CREATE TABLE IF NOT EXISTS public.alert_owners (
    alert_id uuid PRIMARY KEY,
    producer text,
    kind text NOT NULL,
    serial text,
    raised_at timestamptz NOT NULL DEFAULT now()
);
-- Keys the platform draws once and never publishes (ledger/platform_secrets.py): the key of
-- alert ids (a keyed hash of the incident, stable across detector rebuilds, not computable
-- from the log) and the key of the per-label consumer pseudonyms the gateway signs.
CREATE TABLE IF NOT EXISTS public.platform_secrets (
    name text PRIMARY KEY,
    secret bytea NOT NULL
);
-- Where a consumer scan happened, as the server stands behind it (ledger/places.py): the
-- scan's ``region`` column is the server's place; what the client claimed is kept apart,
-- never signed; ``client`` is the server's pseudonym of who asked, from which the gateway
-- derives the per-label pseudonym it signs.
ALTER TABLE public.scan_inbox ADD COLUMN IF NOT EXISTS client text;
ALTER TABLE public.scan_inbox ADD COLUMN IF NOT EXISTS place_source text;
ALTER TABLE public.scan_inbox ADD COLUMN IF NOT EXISTS claim jsonb;
