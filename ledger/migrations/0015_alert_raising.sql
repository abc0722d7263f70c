-- The detector signs each alert it raises (event.v4 AlertRaised, ledger/alert_owners.py,
-- consumers/alert_raiser.py). An alert registered by a detector that signs is marked
-- ``raise_pending`` with what AlertRaised will carry (severity at raise time, the SHA-256
-- commitment to its evidence event ids) until its AlertRaised is on the ledger
-- (``raised_event``). Alerts registered before (or by a detector without a key) have
-- raise_pending false and stay bound to their producer by this table alone, as before.
ALTER TABLE public.alert_owners ADD COLUMN IF NOT EXISTS raise_pending boolean NOT NULL DEFAULT false;
ALTER TABLE public.alert_owners ADD COLUMN IF NOT EXISTS severity text;
ALTER TABLE public.alert_owners ADD COLUMN IF NOT EXISTS evidence_commitment bytea;
ALTER TABLE public.alert_owners ADD COLUMN IF NOT EXISTS raised_event text;
CREATE INDEX IF NOT EXISTS alert_owners_raise_pending_idx ON public.alert_owners (raised_at) WHERE raise_pending;
