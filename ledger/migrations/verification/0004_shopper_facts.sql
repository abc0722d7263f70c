-- What a shopper's page shows beyond the verification view (projections/shopper_facts.py and
-- projections/certificates.py write these in the projector's transaction;
-- projections/shopper_details.py reads them). Issue 17, event.v4.

-- A recall's signed details, for a label recalled by its own Recalled event and for a lot:
-- the hazard (the reason, and event.v4's hazard_zh/en), the remedy, hotline and notice.
CREATE TABLE IF NOT EXISTS {schema}.recalls (
    subject_type text NOT NULL,
    subject text NOT NULL,
    reason text NOT NULL,
    hazard_zh text, hazard_en text, remedy text, remedy_text_zh text, remedy_text_en text,
    hotline text, notice_url text, recall_id text,
    recalled_at timestamptz NOT NULL,
    region text,
    PRIMARY KEY (subject_type, subject)
);

-- What a label's or lot's opening event says that the label and lot rows do not keep (event.v4):
-- the certificates it links and its production date.
CREATE TABLE IF NOT EXISTS {schema}.subject_facts (
    subject_type text NOT NULL,
    subject text NOT NULL,
    certificates text[] NOT NULL DEFAULT '{}',
    production_date text,
    PRIMARY KEY (subject_type, subject)
);

-- Certificates (subject type certificate, event.v4) with their status now.
CREATE TABLE IF NOT EXISTS {schema}.certificates (
    cert_id text PRIMARY KEY,
    scheme text NOT NULL, number text NOT NULL, issuer text NOT NULL, holder text NOT NULL,
    scope text, gtins text[] NOT NULL DEFAULT '{}', gtin_prefixes text[] NOT NULL DEFAULT '{}',
    valid_from text, valid_until text, issuer_name_zh text, issuer_name_en text,
    status text NOT NULL, status_reason text, status_until text, status_at timestamptz NOT NULL,
    seq bigint NOT NULL, head bytea NOT NULL
);

-- A GTIN's master data (subject type product, event.v4), signed by the GTIN's owner.
CREATE TABLE IF NOT EXISTS {schema}.products (
    gtin text PRIMARY KEY,
    producer text NOT NULL,
    name_zh text, name_en text, brand_zh text, brand_en text, image_sha256 text, image_url text,
    sellers jsonb NOT NULL DEFAULT '[]',
    described_at timestamptz,
    seq bigint NOT NULL, head bytea NOT NULL
);

-- Quality commitments (质量诚信承诺) per product or lot: the latest replaces an earlier one.
CREATE TABLE IF NOT EXISTS {schema}.quality_commitments (
    subject_type text NOT NULL,
    subject text NOT NULL,
    text_zh text NOT NULL, text_en text, standard text, valid_until text,
    committed_at timestamptz NOT NULL,
    PRIMARY KEY (subject_type, subject)
);
