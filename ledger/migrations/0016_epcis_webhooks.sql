-- EPCIS webhook subscriptions (ledger/epcis_subscriptions.py, traceledger/api/epcis_webhooks.py): a
-- subscription with a ``dest`` URL is pushed to, not pulled. Its cursor is the same ``acked_through``:
-- it moves only when the receiver answered 2xx, so a delivery lost to a crash or an API restart is
-- sent again (at least once). ``secret`` signs every delivery (HMAC-SHA256); ``attempts`` and
-- ``next_attempt_at`` are the bounded retries with backoff; ``lease_until`` lets one API worker
-- deliver a subscription at a time; ``state`` is 'active' or 'failed' (gave up after the last retry).
ALTER TABLE public.epcis_subscriptions ADD COLUMN IF NOT EXISTS dest text;
ALTER TABLE public.epcis_subscriptions ADD COLUMN IF NOT EXISTS secret bytea;
ALTER TABLE public.epcis_subscriptions ADD COLUMN IF NOT EXISTS state text NOT NULL DEFAULT 'active';
ALTER TABLE public.epcis_subscriptions ADD COLUMN IF NOT EXISTS attempts int NOT NULL DEFAULT 0;
ALTER TABLE public.epcis_subscriptions ADD COLUMN IF NOT EXISTS next_attempt_at timestamptz NOT NULL DEFAULT now();
ALTER TABLE public.epcis_subscriptions ADD COLUMN IF NOT EXISTS lease_until timestamptz;
ALTER TABLE public.epcis_subscriptions ADD COLUMN IF NOT EXISTS last_error text;
ALTER TABLE public.epcis_subscriptions ADD COLUMN IF NOT EXISTS delivered_at timestamptz;
ALTER TABLE public.epcis_subscriptions ADD COLUMN IF NOT EXISTS deliveries bigint NOT NULL DEFAULT 0;
CREATE INDEX IF NOT EXISTS epcis_subscriptions_due_idx ON public.epcis_subscriptions (next_attempt_at)
    WHERE dest IS NOT NULL AND state = 'active';
