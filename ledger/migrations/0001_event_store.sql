-- The ledger's event store: eventsourcing 9.5.6's PostgreSQL tables for the application
-- named "ledger" (ledger/store.py), exactly as its recorders created them at start-up
-- before migrations existed (PostgresApplicationRecorder + PostgresTrackingRecorder,
-- single-row tracking, originator ids of type uuid, POSTGRES_LOCK_TIMEOUT 5). The
-- application now runs with CREATE_TABLE=no (ledger/config.py): this file is the layout.
-- IF NOT EXISTS everywhere: a database made before migrations is adopted as it is.

-- Stored events; notification_id is the global commit order the relay follows.
CREATE TABLE IF NOT EXISTS public.ledger_events (
    originator_id uuid NOT NULL,
    originator_version bigint NOT NULL,
    topic text,
    state bytea,
    notification_id bigserial,
    PRIMARY KEY (originator_id, originator_version)
) WITH (
    autovacuum_enabled = true,
    autovacuum_vacuum_threshold = 100000000,
    autovacuum_vacuum_scale_factor = 0.5,
    autovacuum_analyze_threshold = 1000,
    autovacuum_analyze_scale_factor = 0.01
);
CREATE UNIQUE INDEX IF NOT EXISTS ledger_events_notification_id_idx ON public.ledger_events (notification_id ASC);

-- The composite type and function of eventsourcing's optional "db functions" insert path
-- (POSTGRES_ENABLE_DB_FUNCTIONS, off here); the recorder registers the type at start-up.
DO $$
BEGIN
    CREATE TYPE public.stored_event_uuid AS (originator_id uuid, originator_version bigint, topic text, state bytea);
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;
CREATE OR REPLACE FUNCTION public.es_insert_events_uuid(events public.stored_event_uuid[])
RETURNS SETOF bigint LANGUAGE plpgsql AS
$BODY$BEGIN    SET LOCAL lock_timeout = '5s';    NOTIFY "ledger_events";    RETURN QUERY    INSERT INTO "public"."ledger_events" AS t (    originator_id, originator_version, topic, state)    SELECT originator_id, originator_version, topic, state    FROM unnest(events)    RETURNING notification_id;END;$BODY$;

-- Tracking records (the scan inbox worker's position, written with the events it appends).
CREATE TABLE IF NOT EXISTS public.ledger_tracking (
    application_name text,
    notification_id bigint,
    PRIMARY KEY (application_name)
) WITH (
    autovacuum_enabled = true,
    autovacuum_vacuum_threshold = 100000000,
    autovacuum_vacuum_scale_factor = 0.5,
    autovacuum_analyze_threshold = 1000,
    autovacuum_analyze_scale_factor = 0.01
);
-- eventsourcing marks a tracking table it made for single-row tracking with this row.
INSERT INTO public.ledger_tracking (application_name, notification_id) VALUES ('__migration__', 1)
ON CONFLICT (application_name) DO NOTHING;
