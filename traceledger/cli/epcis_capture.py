"""Client-side signing of a standard EPCIS 2.0 document: map, sign with the actor's key, submit.

:func:`capture_standard` reads the document (:func:`ledger.epcis_capture.read_document`
refuses it whole: too big, not JSON, not EPCIS JSON-LD, invalid against GS1's
schema), maps each event (:func:`ledger.epcis_capture.map_document`), signs the
ledger events of every mapped event on top of the chain heads the API reports
(events of one document chain on each other in document order; an event that
cannot be signed leaves the heads as they were), and submits them with the
events that did not map to ``POST /v1/epcis/capture/signed`` in one signed
request. The server appends event by event and answers the capture job with
every event's result. The private key never leaves this process.
"""

from __future__ import annotations

import base64
import hashlib

from ledger import epcis
from ledger.batches import LabelStep, encode_manifest, labels_root, leaf_of, step_hash
from ledger.epcis_capture import (
    Command,
    Defaults,
    Mapped,
    Unmapped,
    batch_issuance,
    batch_subject,
    declaration_references,
    ledger_event_id,
    map_document,
    read_document,
)
from ledger.errors import Refused
from ledger.events import GENESIS_HASH, SignedEvent, new_event
from traceledger.client import Client, encode_signed
from traceledger.commands import Signer

# Kinds that start a chain; any other kind needs the subject to exist already.
CREATES = {"Issued", "ContainerCreated", "LotCommissioned", "Transformed"}


def read(data: bytes) -> dict:
    """The checked document, or :class:`Refused` with the EPCIS exception as its code."""
    try:
        return read_document(data)
    except epcis.EpcisError as exc:
        raise Refused(exc.exception, exc.detail, field="document") from None


def chain_heads(client: Client, mapped: list[Mapped]) -> dict[tuple[str, str], tuple[int, bytes]]:
    """The current head (seq, hash) of every chain the mapped events touch."""
    wanted: dict[str, set[str]] = {}
    for m in mapped:
        for c in m.commands:
            wanted.setdefault(c.subject_type, set()).add(c.subject)
    heads = {}
    for subject_type, subjects in wanted.items():
        for subject, head in client.heads(subject_type, sorted(subjects)).items():
            if head is not None:
                heads[(subject_type, subject)] = (head["seq"], bytes.fromhex(head["hash"]))
    return heads


def with_shipment(client: Client, m: Mapped) -> list[Command]:
    """An unpacking's commands with the container's territory/channel on each child (the ledger requires them equal)."""
    if m.unpack_from is None:
        return m.commands
    box = client.container(m.unpack_from) or {}
    return [Command(c.subject_type, c.subject, c.kind, c.payload | {"territory": box.get("territory"), "channel": box.get("channel")})
            if c.kind == "UnpackedFrom" else c for c in m.commands]


def sign_batch(signer: Signer, m: Mapped, payload: dict, serials: list[str], heads: dict) -> tuple[SignedEvent, bytes]:
    """One signed ``BatchIssued`` for ``serials`` and its manifest; each label's head becomes its step hash."""
    taken = [s for s in serials if ("label", s) in heads]
    if taken:
        raise Refused("already_exists", f"label {taken[0]} exists in the ledger already", field="epcList")
    steps = [LabelStep(s) for s in serials]
    body = payload | {"count": len(steps), "labels_root": labels_root(steps), "pin_secret": None}
    # The batch id and event id come from the EPCIS event, so mapping a document twice signs the same event.
    command = Command("batch", batch_subject(signer.actor, m.key), "BatchIssued", body)
    event = new_event(subject_type="batch", subject=command.subject, kind="BatchIssued", payload=body, actor=signer.actor,
                      key_id=signer.key.key_id, occurred_at=m.occurred_at, event_id=ledger_event_id(signer.actor, m.key, command))
    signed = event.sign(signer.key)
    heads.update({("label", s.serial): (0, step_hash(signed.hash, leaf_of(s))) for s in steps})
    return signed, encode_manifest(steps)


def sign_group(signer: Signer, m: Mapped, commands: list[Command], heads: dict) -> list[SignedEvent]:
    """The signed events of one EPCIS event, chained on ``heads`` (updated only if every one signs)."""
    local, out = dict(heads), []
    for c in commands:
        head = local.get((c.subject_type, c.subject))
        if head is None and c.kind not in CREATES:
            raise Refused("unknown_subject", f"{c.subject_type} {c.subject} does not exist in the ledger", field="epcList")
        if head is not None and c.kind in CREATES:
            # The ledger's rules let a producer issue a label again (restarting its state): never from a capture.
            raise Refused("already_exists", f"{c.subject_type} {c.subject} exists in the ledger already", field="epcList")
        seq, prev = (0, GENESIS_HASH) if head is None else (head[0] + 1, head[1])
        event = new_event(subject_type=c.subject_type, subject=c.subject, kind=c.kind, payload=c.payload, actor=signer.actor,
                          key_id=signer.key.key_id, seq=seq, prev_hash=prev, occurred_at=m.occurred_at,
                          event_id=ledger_event_id(signer.actor, m.key, c))
        signed = event.sign(signer.key)
        local[(c.subject_type, c.subject)] = (seq, signed.hash)
        out.append(signed)
    heads.update(local)
    return out


def entries(client: Client, signer: Signer, results: list[Mapped | Unmapped]) -> list[dict]:
    """One request entry per EPCIS event: signed ledger events, or the reason there are none."""
    heads = chain_heads(client, [m for m in results if isinstance(m, Mapped)])
    out = []
    for m in results:
        entry = {"index": m.index, "eventKey": m.key}
        if isinstance(m, Unmapped):
            out.append(entry | {"refused": {"code": m.code, "detail": m.detail}})
            continue
        batch = batch_issuance(m)
        try:
            if batch is not None:
                signed, manifest = sign_batch(signer, m, *batch, heads)
                entry["manifest"] = base64.b64encode(manifest).decode("ascii")
                group = [signed]
            else:
                group = sign_group(signer, m, with_shipment(client, m), heads)
        except Refused as exc:
            out.append(entry | {"refused": {"code": exc.code, "detail": exc.detail}})
            continue
        out.append(entry | {"signed": [encode_signed(s) for s in group], "gtins": m.gtins, "ignored": m.ignored})
    return out


def capture_standard(client: Client, signer: Signer, data: bytes, defaults: Defaults) -> dict:
    """Capture a standard EPCIS document signed by ``signer``; the capture job with every event's result."""
    doc = read(data)
    # Corrective events named by a partner's eventIDs captured before: the ledger says which events they became.
    names = declaration_references(doc)
    known = client.epcis_captured(names, signer.key.with_actor(signer.actor)) if names else {}
    results = map_document(doc, signer.actor, defaults, known)
    body = {"documentSha256": hashlib.sha256(data).hexdigest(), "events": entries(client, signer, results)}
    return client.epcis_capture_signed(body, signer.key.with_actor(signer.actor))
