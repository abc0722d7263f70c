-- event.v5 (issue 19): a TransactionEvent may have no bizStep (EPCIS 2.0 makes it optional), so the
-- EPCIS query index (0006) keeps NULL there; EQ_bizStep never matches it.
ALTER TABLE public.epcis_events ALTER COLUMN biz_step DROP NOT NULL;
