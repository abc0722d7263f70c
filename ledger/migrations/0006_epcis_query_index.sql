-- The EPCIS 2.0 query interface (projections/epcis_index.py, traceledger/api/epcis_query.py):
-- one row per EPCIS event of the global log, so GET /events filters and pages in PostgreSQL
-- instead of decoding the whole log in Python.

-- When the relay sequenced each entry into the global log: the EPCIS recordTime. Entries
-- sequenced before this migration all carry the moment it ran (the earliest time known).
ALTER TABLE public.log_entries ADD COLUMN IF NOT EXISTS recorded_at timestamptz NOT NULL DEFAULT now();

-- An EPCIS event, at the log index of the ledger event that leads it (a pack's or unpack's
-- container event leads its children's events); ``members`` are the log indexes of every
-- ledger event it carries, in order. Identifiers (``read_point``, ``biz_location``) are kept
-- without scheme and host (``/party/acme``), so any resolver host matches.
CREATE TABLE IF NOT EXISTS public.epcis_events (
    log_index bigint PRIMARY KEY,
    event_id text NOT NULL UNIQUE,
    event_type text NOT NULL,
    action text,
    biz_step text NOT NULL,
    disposition text,
    event_time timestamptz NOT NULL,
    record_time timestamptz NOT NULL,
    read_point text,
    biz_location text,
    members bigint[] NOT NULL
);
CREATE INDEX IF NOT EXISTS epcis_events_type_idx ON public.epcis_events (event_type, log_index);
CREATE INDEX IF NOT EXISTS epcis_events_biz_step_idx ON public.epcis_events (biz_step, log_index);
CREATE INDEX IF NOT EXISTS epcis_events_disposition_idx ON public.epcis_events (disposition, log_index);
CREATE INDEX IF NOT EXISTS epcis_events_event_time_idx ON public.epcis_events (event_time);
CREATE INDEX IF NOT EXISTS epcis_events_record_time_idx ON public.epcis_events (record_time);
CREATE INDEX IF NOT EXISTS epcis_events_read_point_idx ON public.epcis_events (read_point, log_index);
CREATE INDEX IF NOT EXISTS epcis_events_biz_location_idx ON public.epcis_events (biz_location, log_index);

-- The identifiers an EPCIS event names, by role: 'epc' (epcList, childEPCs), 'parent'
-- (parentID), 'input' / 'output' (input/outputEPCList), 'class' (quantityList), 'input_class'
-- / 'output_class' (input/outputQuantityList), 'source:<type>' / 'destination:<type>' (sourceList,
-- destinationList, e.g. 'destination:owning_party'). Keys as above (``/01/<gtin>/21/<serial>``);
-- collation "C" so a pattern (``/01/<gtin>/21/%``) is a range scan of the same index.
CREATE TABLE IF NOT EXISTS public.epcis_event_epcs (
    epc text COLLATE "C" NOT NULL,
    role text NOT NULL,
    log_index bigint NOT NULL,
    PRIMARY KEY (epc, role, log_index)
);
CREATE INDEX IF NOT EXISTS epcis_event_epcs_event_idx ON public.epcis_event_epcs (log_index);

-- Children's PackedInto / UnpackedFrom events still expected by a pack or unpack (the EPCIS
-- event at ``log_index``): the grouping of ledger.epcis.group_events, kept across batches.
CREATE TABLE IF NOT EXISTS public.epcis_waiting_children (
    container text NOT NULL,
    kind text NOT NULL,
    child text NOT NULL,
    log_index bigint NOT NULL,
    PRIMARY KEY (container, kind, child)
);

-- Each label's GTIN (from its Issued event), for its Digital Link EPC.
CREATE TABLE IF NOT EXISTS public.epcis_label_gtins (
    serial text PRIMARY KEY,
    gtin text NOT NULL
);

-- How far the index has read the global log: the next log index to index.
CREATE TABLE IF NOT EXISTS public.epcis_index_position (
    id boolean PRIMARY KEY DEFAULT true CHECK (id),
    next_log_index bigint NOT NULL
);
INSERT INTO public.epcis_index_position (id, next_log_index) VALUES (true, 0) ON CONFLICT DO NOTHING;
