-- Anonymous input weighed per client (ledger/client_limits.py, issue 15): fixed-window
-- request counters per (scope, client), shared by every API worker; which client already
-- counted in a label's public "queried N times" this window; and the nonces of signed
-- API requests, remembered for their signature window (ledger/request_nonces.py).
CREATE TABLE IF NOT EXISTS public.client_limits (
    scope text NOT NULL,
    client text NOT NULL,
    window_start timestamptz NOT NULL,
    hits integer NOT NULL,
    PRIMARY KEY (scope, client)
);
CREATE INDEX IF NOT EXISTS client_limits_window_idx ON public.client_limits (window_start);

CREATE TABLE IF NOT EXISTS public.label_query_clients (
    serial text NOT NULL,
    client text NOT NULL,
    window_start timestamptz NOT NULL,
    PRIMARY KEY (serial, client, window_start)
);
CREATE INDEX IF NOT EXISTS label_query_clients_window_idx ON public.label_query_clients (window_start);

-- false: the same client already queried this label in this window, so the scan is on the
-- ledger (recorded as ever) but not in the label's public query count.
ALTER TABLE public.scan_inbox ADD COLUMN IF NOT EXISTS counted boolean NOT NULL DEFAULT true;
CREATE INDEX IF NOT EXISTS scan_inbox_repeat_idx ON public.scan_inbox (serial) WHERE NOT counted;

CREATE TABLE IF NOT EXISTS public.request_nonces (
    actor text NOT NULL,
    nonce text NOT NULL,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (actor, nonce)
);
CREATE INDEX IF NOT EXISTS request_nonces_expiry_idx ON public.request_nonces (expires_at);
