"""Containers and lots from the client side: payloads, and pack/unpack as all-or-nothing batches.

Packing children into a container is one ``Packed`` event on the container
and one ``PackedInto`` event on each child's chain, signed together and posted
as one atomic batch (see :mod:`ledger.pairing`): the ledger writes all of
them or none. A batch that loses a race (someone appended to one of its
chains first) is rebuilt on fresh heads and sent once more; the second time
the rules say why it cannot be done (e.g. the unit is now in another
container). Unpacking is the same with ``Unpacked`` / ``UnpackedFrom``; each
child inherits the container's shipment (territory, channel), which the
client reads from the container's state and the ledger checks.
"""

from __future__ import annotations

from typing import Sequence

from ledger import gs1
from ledger.errors import Refused
from ledger.events import GENESIS_HASH, SignedEvent
from ledger.lifecycle import child_type
from traceledger.client import EVENTS_PER_REQUEST, Client
from traceledger.commands import STALE_RETRIES, Report, Signer, chunked

# One container event + one event per child must fit one request.
CHILDREN_PER_BATCH = EVENTS_PER_REQUEST - 1


def container_created_payload(level: str, *, region: str | None = None) -> dict:
    """ContainerCreated (EPCIS commissioning of an SSCC): ``level`` case or pallet."""
    return {"level": level, "region": region}


def packed_payload(children: Sequence[str], *, region: str | None = None) -> dict:
    """Packed / Unpacked on the container (EPCIS AggregationEvent ADD / DELETE)."""
    return {"children": list(children), "region": region}


def packed_into_payload(container: str) -> dict:
    """PackedInto on each child's own chain."""
    return {"container": container}


def unpacked_from_payload(container: str, territory: str | None, channel: str | None) -> dict:
    """UnpackedFrom on each child's own chain: it keeps the container's shipment."""
    return {"container": container, "territory": territory, "channel": channel}


def lot_commissioned_payload(product: str, certificates: Sequence[str] = (), *, region: str | None = None) -> dict:
    """LotCommissioned: a supplier's lot of material or components, with certificates (e.g. CCC numbers)."""
    return {"product": product, "certificates": list(certificates), "region": region}


def transformed_payload(inputs: Sequence[str], *, region: str | None = None) -> dict:
    """Transformed on the output lot (EPCIS TransformationEvent): the input lots consumed."""
    return {"inputs": list(inputs), "region": region}


def _next(signer: Signer, subject_type: str, subject: str, kind: str, payload: dict, head: dict | None) -> SignedEvent:
    seq, prev = (0, GENESIS_HASH) if head is None else (head["seq"] + 1, bytes.fromhex(head["hash"]))
    return signer.sign(subject_type, subject, kind, payload, seq=seq, prev_hash=prev)


def _heads(client: Client, subjects: Sequence[tuple[str, str]]) -> dict[tuple[str, str], dict | None]:
    out: dict[tuple[str, str], dict | None] = {}
    for subject_type in {t for t, _ in subjects}:
        wanted = [s for t, s in subjects if t == subject_type]
        for subject, head in client.heads(subject_type, wanted).items():
            out[(subject_type, subject)] = head
    return out


def _check_codes(container: str, children: Sequence[str]) -> None:
    gs1.validate_sscc(container, "container")
    if not children:
        raise Refused("invalid_field", "give at least one child (serial or SSCC)", field="children")
    for child in children:
        if gs1.is_sscc(child):
            gs1.validate_sscc(child, "children")
        else:
            gs1.validate_serial(child, "children")
    if len(set(children)) != len(children):
        raise Refused("invalid_field", "a child is listed twice", field="children")


def _aggregate(client: Client, signer: Signer, container: str, children: Sequence[str], kind: str, child_payload: dict, region: str | None) -> Report:
    """One atomic batch per group of children: the container's event first, then each child's."""
    child_kind = {"Packed": "PackedInto", "Unpacked": "UnpackedFrom"}[kind]
    report = Report()
    for group in chunked(children, CHILDREN_PER_BATCH):
        for attempt in range(STALE_RETRIES + 1):
            subjects = [("container", container)] + [(child_type(c), c) for c in group]
            heads = _heads(client, subjects)
            if heads[("container", container)] is None:
                raise Refused("unknown_subject", f"container {container} does not exist (create it first)", field="container")
            missing = [c for c in group if heads[(child_type(c), c)] is None]
            if missing:
                raise Refused("unknown_subject", f"{child_type(missing[0])} {missing[0]} does not exist", field="children")
            events = [_next(signer, "container", container, kind, packed_payload(group, region=region), heads[("container", container)])]
            events += [_next(signer, child_type(c), c, child_kind, child_payload, heads[(child_type(c), c)]) for c in group]
            results = client.post_batch(events, atomic=True)
            lost = any(r.get("code") == "stale_head" for r in results)
            if lost and attempt < STALE_RETRIES:
                report.retried += len(events)
                continue
            for result in results:
                report.add(result)
            break
        if not report.ok:
            break  # later groups would meet the same reason
    return report


def pack(client: Client, signer: Signer, container: str, children: Sequence[str], *, region: str | None = None) -> Report:
    """Pack ``children`` (serials or SSCCs) into ``container``, signed by the custodian of all of them."""
    _check_codes(container, children)
    return _aggregate(client, signer, container, list(children), "Packed", packed_into_payload(container), region)


def unpack(client: Client, signer: Signer, container: str, children: Sequence[str] | None = None, *, region: str | None = None) -> Report:
    """Take ``children`` (default: everything inside) out of ``container``, signed by its custodian."""
    gs1.validate_sscc(container, "container")
    state = client.container(container, signer.key.with_actor(signer.actor))
    if state is None:
        raise Refused("unknown_subject", f"container {container} does not exist", field="container")
    if not children:
        children = state["children"]
        if len(children) != state["contents"]:
            # The list comes from the read model; the count from the ledger itself.
            raise Refused("not_caught_up", f"the read model lists {len(children)} of the {state['contents']} items in {container}; "
                          "name the children, or retry in a moment", field="children")
    _check_codes(container, children)
    return _aggregate(client, signer, container, children, "Unpacked", unpacked_from_payload(container, state["territory"], state["channel"]), region)
