-- What a shopper's report says beyond "suspected fake" (ledger/shopper_records.py, issue 17):
-- a random public number (report ids must not reveal volumes), where and for how much the
-- item was bought, an optional phone number for the regulator to call back. Kept here for
-- regulators only: none of it is signed onto the ledger (free text from anyone on the internet).
CREATE TABLE IF NOT EXISTS public.consumer_report_details (
    report_id bigint PRIMARY KEY REFERENCES public.consumer_reports (id),
    public_id text NOT NULL UNIQUE,
    serial text NOT NULL,
    place text,
    price text,
    phone text
);
