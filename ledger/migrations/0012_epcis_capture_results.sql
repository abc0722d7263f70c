-- Standard EPCIS capture with client-side signing (ledger/capture_jobs.py): who captured, which
-- document, each EPCIS event's result; and every EPCIS event ever captured, so a replayed document
-- or event is refused. A document is identified by the SHA-256 of its bytes, per capturing actor.
ALTER TABLE public.epcis_captures ADD COLUMN IF NOT EXISTS actor text;
ALTER TABLE public.epcis_captures ADD COLUMN IF NOT EXISTS document_sha256 text;
ALTER TABLE public.epcis_captures ADD COLUMN IF NOT EXISTS results jsonb;
ALTER TABLE public.epcis_captures ADD COLUMN IF NOT EXISTS seq bigserial;
CREATE UNIQUE INDEX IF NOT EXISTS epcis_captures_document_idx ON public.epcis_captures (actor, document_sha256)
    WHERE document_sha256 IS NOT NULL;
CREATE INDEX IF NOT EXISTS epcis_captures_seq_idx ON public.epcis_captures (seq);
-- An EPCIS event (its eventID, or the hash of an event without one) is captured once: reserved
-- before its ledger events are appended, released if they are refused.
CREATE TABLE IF NOT EXISTS public.epcis_captured_events (
    event_key text PRIMARY KEY,
    capture_id uuid NOT NULL,
    event_index int NOT NULL
);
