-- EPCIS named queries and their subscriptions (ledger/epcis_subscriptions.py). A subscription is
-- a durable cursor: the log index of the last EPCIS event its subscriber acknowledged. Events after
-- it are delivered (again) until acknowledged, so an API restart loses none.
CREATE TABLE IF NOT EXISTS public.epcis_named_queries (
    name text PRIMARY KEY,
    owner text NOT NULL,
    params jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS public.epcis_subscriptions (
    subscription_id uuid PRIMARY KEY,
    query_name text NOT NULL REFERENCES public.epcis_named_queries (name) ON DELETE CASCADE,
    owner text NOT NULL,
    acked_through bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    acked_at timestamptz
);
CREATE INDEX IF NOT EXISTS epcis_subscriptions_query_idx ON public.epcis_subscriptions (query_name);
