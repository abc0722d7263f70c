-- Photos attached to shoppers' reports (ledger/report_photos.py, issue 17 item 6): kept off
-- the ledger, by the SHA-256 of the stored bytes, which are the server's re-encoding of the
-- upload (a plain JPEG: no metadata, no trailing data). The report's details name the hash;
-- regulators fetch the bytes by it (GET /v1/report-photos/{sha256}).
CREATE TABLE IF NOT EXISTS public.report_photos (
    sha256 text PRIMARY KEY CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    content_type text NOT NULL,
    bytes bytea NOT NULL,
    width int NOT NULL,
    height int NOT NULL,
    stored_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE public.consumer_report_details ADD COLUMN IF NOT EXISTS photo_sha256 text REFERENCES public.report_photos (sha256);
