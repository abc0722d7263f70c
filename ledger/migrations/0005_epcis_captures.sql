-- EPCIS 2.0 capture jobs (traceledger/api_epcis.py): what GET /v1/epcis/capture/{id} reports.
CREATE TABLE IF NOT EXISTS public.epcis_captures (
    capture_id uuid PRIMARY KEY,
    created_at timestamptz NOT NULL,
    finished_at timestamptz,
    success boolean NOT NULL,
    events int NOT NULL,
    errors jsonb NOT NULL
);
