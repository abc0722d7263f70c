"""Certificates with their status, and products' master data: the event.v4 chains a page shows.

Certificates (subject type ``certificate``, ``<SCHEME>/<number>``: issued, suspended,
reinstated, revoked by a certification body) and products (subject type ``product``,
a GTIN-14: described and committed to by the GTIN's owner) travel on the label topic;
the verification projector hands their records to :func:`apply` (one line) rather than
keep their chains itself. Each record is checked exactly as the projector checks its
own: the signer's key as of the record's log index, the Ed25519 signature, the chain
link and the lifecycle rules (:func:`ledger.lifecycle.authorize`); a record delivered
again has no second effect, a different event at a stored position is refused as a fork.

:func:`certificates_of` reads certificates by id with their status *now* (the page
asks at the time of the query); :func:`product_of` a GTIN's description.
"""

from __future__ import annotations

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from ledger import lifecycle
from ledger.errors import Refused
from ledger.events import SignedEvent
from ledger.keys import verify_signature
from ledger.lifecycle import authorize, fold, signer_of
from ledger.record_headers import header
from ledger.registry import ActorSource
from projections import shopper_facts

SUBJECT_TYPES = ("certificate", "product")
STATUS_OF = {"CertificateIssued": "valid", "CertificateSuspended": "suspended", "CertificateReinstated": "valid", "CertificateRevoked": "revoked"}


def apply(cur: psycopg.Cursor, schema: str, record, signed: SignedEvent, feed: ActorSource) -> None:
    """Check and apply a certificate's or product's record (nothing if delivered before; :class:`Refused` if it fails)."""
    e = signed.event
    if record.key != e.subject.encode():
        raise Refused("key_mismatch", "record key is not the event's subject", field="key")
    raw_index = header(record, "log_index")
    lookup = feed.registry.lookup(int(raw_index) if raw_index is not None else None)
    state = _load(cur, schema, e.subject_type, e.subject)
    try:
        signer = signer_of(e, lookup)
    except Refused:
        feed.catch_up()  # the certifier's registration may be on the actor topic, not read yet
        signer = signer_of(e, lookup)
    if not verify_signature(signer.public_key, signed.body, signed.signature):
        raise Refused("bad_signature", f"signature of event {e.event_id} does not verify", field="signature")
    if state is not None and e.seq <= state.seq:
        if e.seq == state.seq and state.head == signed.hash:
            return None  # delivered again: no second effect
        raise Refused("conflicting_event", f"{e.subject} already has a different event {e.seq}: a fork attempt", field="seq")
    authorize(state, e, signer, lookup)
    # Checked: from here on, only effects.
    new = fold(state, e, signed.hash)
    if e.subject_type == "certificate":
        _save_certificate(cur, schema, e, new)
    else:
        _save_product(cur, schema, e, new)
    return None


def _load(cur: psycopg.Cursor, schema: str, subject_type: str, subject: str):
    """The chain's state as stored (``lifecycle.CertificateState`` or ``ProductState``), or None."""
    if subject_type == "certificate":
        row = cur.execute(f"SELECT cert_id, scheme, number, issuer, holder, valid_until, status, seq, head FROM {schema}.certificates "
                          "WHERE cert_id = %s", (subject,)).fetchone()
        return lifecycle.CertificateState(*row[:8], head=bytes(row[8])) if row else None
    if subject_type == "product":
        row = cur.execute(f"SELECT gtin, producer, seq, head FROM {schema}.products WHERE gtin = %s", (subject,)).fetchone()
        return lifecycle.ProductState(row[0], row[1], row[2], bytes(row[3])) if row else None
    raise Refused("invalid_field", f"a {subject_type} event is not a certificate's or a product's", field="subject_type")


def _save_certificate(cur: psycopg.Cursor, schema: str, e, new) -> None:
    p = e.payload
    if e.kind == "CertificateIssued":
        cur.execute(
            f"INSERT INTO {schema}.certificates (cert_id, scheme, number, issuer, holder, scope, gtins, gtin_prefixes, valid_from, "
            "valid_until, issuer_name_zh, issuer_name_en, status, status_at, seq, head) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (e.subject, p["scheme"], p["number"], e.actor, p["holder"], p.get("scope"), list(p.get("gtins") or ()),
             list(p.get("gtin_prefixes") or ()), p.get("valid_from"), p.get("valid_until"), p.get("issuer_name_zh"),
             p.get("issuer_name_en"), new.status, e.occurred_at, new.seq, new.head),
        )
        return
    cur.execute(
        f"UPDATE {schema}.certificates SET status = %s, status_reason = %s, status_until = %s, status_at = %s, seq = %s, head = %s "
        "WHERE cert_id = %s",
        (new.status, p.get("reason"), p.get("until"), e.occurred_at, new.seq, new.head, e.subject),
    )


def _save_product(cur: psycopg.Cursor, schema: str, e, new) -> None:
    p = e.payload
    cur.execute(
        f"INSERT INTO {schema}.products (gtin, producer, seq, head) VALUES (%s, %s, %s, %s) "
        "ON CONFLICT (gtin) DO UPDATE SET seq = EXCLUDED.seq, head = EXCLUDED.head",
        (e.subject, new.producer, new.seq, new.head),
    )
    if e.kind == "ProductDescribed":  # a later description replaces the whole earlier one
        image = p.get("image_sha256")
        sellers = [{k: s.get(k) for k in ("name_zh", "name_en", "region")} for s in p.get("authorised_sellers") or ()]
        cur.execute(
            f"UPDATE {schema}.products SET name_zh = %s, name_en = %s, brand_zh = %s, brand_en = %s, image_sha256 = %s, "
            "image_url = %s, sellers = %s, described_at = %s WHERE gtin = %s",
            (p.get("name_zh"), p.get("name_en"), p.get("brand_zh"), p.get("brand_en"), bytes(image).hex() if image else None,
             p.get("image_url"), Jsonb(sellers), e.occurred_at, e.subject),
        )
    elif e.kind == "QualityCommitted":
        shopper_facts.save_commitment(cur, schema, e)


async def certificates_of(conn: psycopg.AsyncConnection, ids: list[str], schema: str = "verification") -> dict[str, dict]:
    """Certificate id -> its row now (scheme, number, issuer, holder, scope, validity, status and since when)."""
    if not ids:
        return {}
    async with conn.cursor(row_factory=dict_row) as cur:
        sql = (f"SELECT cert_id, scheme, number, issuer, holder, scope, gtins, gtin_prefixes, valid_from, valid_until, issuer_name_zh, "
               f"issuer_name_en, status, status_reason, status_until, status_at FROM {schema}.certificates WHERE cert_id = ANY(%s)")
        rows = await (await cur.execute(sql, (list(ids),), prepare=True)).fetchall()
    return {r["cert_id"]: r for r in rows}
