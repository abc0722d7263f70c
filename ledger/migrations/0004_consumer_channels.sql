-- The consumer channels' own state (traceledger/consumer_store.py): PIN checks and their
-- rate limits, voice calls in progress, consumers' counterfeit reports, and the secret
-- that pseudonymizes client addresses.
CREATE TABLE IF NOT EXISTS public.pin_uses (
    serial text PRIMARY KEY,
    first_verified_at timestamptz NOT NULL,
    last_verified_at timestamptz NOT NULL,
    uses bigint NOT NULL,
    first_channel text NOT NULL
);
CREATE TABLE IF NOT EXISTS public.pin_attempts (
    id bigserial PRIMARY KEY,
    serial text NOT NULL,
    client text NOT NULL,
    channel text NOT NULL,
    at timestamptz NOT NULL DEFAULT now(),
    outcome text NOT NULL
);
CREATE INDEX IF NOT EXISTS pin_attempts_serial_idx ON public.pin_attempts (serial, at);
CREATE INDEX IF NOT EXISTS pin_attempts_client_idx ON public.pin_attempts (client, at);
CREATE TABLE IF NOT EXISTS public.ivr_calls (
    call_id text PRIMARY KEY,
    step text NOT NULL,
    serial text,
    tries integer NOT NULL DEFAULT 0,
    lang text NOT NULL DEFAULT 'zh',
    updated_at timestamptz NOT NULL DEFAULT now(),
    prompt text
);
ALTER TABLE public.ivr_calls ADD COLUMN IF NOT EXISTS prompt text;
CREATE TABLE IF NOT EXISTS public.consumer_reports (
    id bigserial PRIMARY KEY,
    serial text NOT NULL,
    channel text NOT NULL,
    client text NOT NULL,
    note text,
    at timestamptz NOT NULL DEFAULT now(),
    event_id text
);
ALTER TABLE public.consumer_reports ADD COLUMN IF NOT EXISTS event_id text;
CREATE INDEX IF NOT EXISTS consumer_reports_serial_idx ON public.consumer_reports (serial);
CREATE TABLE IF NOT EXISTS public.consumer_secret (
    id integer PRIMARY KEY CHECK (id = 1),
    secret bytea NOT NULL
);
