-- Consumer scans and reports accepted by the API, signed onto the ledger in batches by the
-- scan recorder (ledger/scan_inbox.py); tailed by id by the detector for unknown codes.
CREATE TABLE IF NOT EXISTS public.scan_inbox (
    id bigserial PRIMARY KEY,
    event_id text NOT NULL UNIQUE,
    serial text NOT NULL,
    channel text NOT NULL,
    region text,
    lat double precision,
    lon double precision,
    session text,
    occurred_at timestamptz NOT NULL,
    kind text NOT NULL DEFAULT 'scan',
    pin_result text,
    reason text
);
-- Inboxes created before reports and PIN results: add the columns in place.
ALTER TABLE public.scan_inbox ADD COLUMN IF NOT EXISTS kind text NOT NULL DEFAULT 'scan';
ALTER TABLE public.scan_inbox ADD COLUMN IF NOT EXISTS pin_result text;
ALTER TABLE public.scan_inbox ADD COLUMN IF NOT EXISTS reason text;
CREATE INDEX IF NOT EXISTS scan_inbox_serial_idx ON public.scan_inbox (serial, id);
