"""What the CLI verbs and the demo do, without click: build, sign and submit events.

* ``*_payload`` functions are the one place payload field names live; every
  optional field of ``schemas/event.v*.avsc`` is present (None when unset).
* :func:`append_next` is the one "fetch heads -> build next events -> sign ->
  post -> report" loop behind ship, receive, scan, flag, recall, decommission,
  actor rotate and actor revoke.
* :func:`issue_label_batches` is issuance in batch events (event.v3, the default) and
  :func:`issue_labels` in single events: both stream serials out as batches are
  accepted, never holding all N in memory.
"""

from __future__ import annotations

import csv
import itertools
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

from ledger import batches, gs1, pins
from ledger.errors import Refused
from ledger.events import GENESIS_HASH, SignedEvent, new_event, validate_actor_id, validate_event
from ledger.keys import KeyPair
from traceledger.client import Client

DEFAULT_CHUNK = 1000
STALE_RETRIES = 1  # a second loss in a row is reported: the caller's view is racing someone's
KEEP_REFUSALS = 20  # a report keeps this many refusals in full; the rest are counted
CSV_HEADER = ("serial", "gtin", "lot", "expiry", "uri")

Progress = Callable[[int], None]

# A syntactically valid subject per type: lets a payload be checked before any I/O.
_PROBE_SUBJECT = {"label": "PROBE", "actor": "probe", "lot": "00000000000000/PROBE", "alert": "00000000-0000-0000-0000-000000000000",
                  "container": "000000000000000000", "certificate": "PROBE/0", "product": "00000000000000"}  # the last two: event.v4


# ---------------------------------------------------------------- payloads


def issued_payload(gtin: str, lot: str, product: str, *, expiry: str | None = None, region: str | None = None, pin_hash: str | None = None) -> dict:
    """Issued (EPCIS commissioning); ``gtin`` is normalized to GTIN-14."""
    return {"gtin": gs1.normalize_gtin(gtin), "lot": lot, "expiry": expiry, "product": product, "region": region, "pin_hash": pin_hash}


def shipped_payload(consignee: str, territory: str, channel: str, *, region: str | None = None) -> dict:
    """Shipped (EPCIS shipping) to ``consignee``, authorized for ``territory``/``channel``."""
    return {"consignee": consignee, "territory": territory, "channel": channel, "region": region}


def received_payload(*, region: str | None = None) -> dict:
    """Received (EPCIS receiving) by the consignee."""
    return {"region": region}


def scanned_payload(channel: str, *, region: str | None = None, lat: float | None = None, lon: float | None = None, session: str | None = None,
                    pin_result: str | None = None) -> dict:
    """Scanned (EPCIS inspecting) through ``channel``; ``pin_result`` when the scan checked the scratch-off PIN."""
    return {"channel": channel, "region": region, "lat": lat, "lon": lon, "session": session, "pin_result": pin_result}


def flagged_payload(reason: str, *, region: str | None = None) -> dict:
    """FlaggedCounterfeit: a regulator's finding."""
    return {"reason": reason, "region": region}


def recalled_payload(reason: str) -> dict:
    """Recalled, for a label or a whole lot."""
    return {"reason": reason}


def decommissioned_payload(reason: str) -> dict:
    """Decommissioned (EPCIS decommissioning)."""
    return {"reason": reason}


def actor_registered_payload(role: str, name: str, public_key: bytes, gtin_prefixes: Sequence[str] = ()) -> dict:
    """ActorRegistered: an actor admitted by the registrar with its public key."""
    return {"role": role, "name": name, "public_key": public_key, "gtin_prefixes": list(gtin_prefixes)}


def key_rotated_payload(public_key: bytes) -> dict:
    """ActorKeyRotated: the actor's new public key."""
    return {"public_key": public_key}


def actor_revoked_payload(reason: str) -> dict:
    """ActorRevoked."""
    return {"reason": reason}


def alert_acknowledged_payload(alert_kind: str, serial: str | None, producer: str | None, note: str) -> dict:
    """AlertAcknowledged: the alert's producer or a regulator takes it on (opens the alert's chain)."""
    return {"alert_kind": alert_kind, "serial": serial, "producer": producer, "note": note}


def alert_resolved_payload(resolution: str, producer: str | None, note: str) -> dict:
    """AlertResolved: ``confirmed`` or ``false_positive``, after an acknowledgement."""
    return {"resolution": resolution, "producer": producer, "note": note}


# ---------------------------------------------------------------- signing


@dataclass(frozen=True)
class Signer:
    """A key pair and the actor id it signs as."""

    key: KeyPair
    actor: str

    @classmethod
    def load(cls, path: str | Path, as_actor: str | None = None) -> "Signer":
        """Load a key file; the actor is ``as_actor`` or the key file's ``actor``."""
        key = KeyPair.load(path)
        actor = as_actor or key.actor
        if not actor:
            raise Refused("missing_actor", f"key file {path} names no actor; pass --as ACTOR_ID", field="as")
        validate_actor_id(actor, "as")
        return cls(key, actor)

    def sign(self, subject_type: str, subject: str, kind: str, payload: dict, *, seq: int = 0, prev_hash: bytes = GENESIS_HASH) -> SignedEvent:
        """Build and sign one event (validated before signing)."""
        event = new_event(
            subject_type=subject_type, subject=subject, kind=kind, payload=payload,
            actor=self.actor, key_id=self.key.key_id, seq=seq, prev_hash=prev_hash,
        )
        return event.sign(self.key)

    def check(self, subject_type: str, kind: str, payload: dict, subject: str | None = None) -> None:
        """Refuse a bad payload (or signer id) locally, before any network call."""
        probe = new_event(
            subject_type=subject_type, subject=subject or _PROBE_SUBJECT[subject_type], kind=kind,
            payload=payload, actor=self.actor, key_id=self.key.key_id,
        )
        validate_event(probe)


def read_public_key(path: str | Path, field_name: str = "public-key") -> bytes:
    """The raw public key from a ``.pub`` file or a private key file."""
    try:
        data = json.loads(Path(path).read_text())
        public_key = bytes.fromhex(data["public_key"])
        if len(public_key) != 32:
            raise ValueError("public_key is not 32 bytes")
    except FileNotFoundError:
        raise Refused("invalid_key_file", f"key file {path} not found", field=field_name) from None
    except (ValueError, KeyError, TypeError) as exc:
        raise Refused("invalid_key_file", f"{path} holds no public key: {exc}", field=field_name) from None
    return public_key


# ---------------------------------------------------------------- reports


@dataclass
class Report:
    """Outcome of submitting many events: counts, and the first refusals in full."""

    accepted: int = 0
    duplicate: int = 0
    refused: int = 0
    retried: int = 0
    refusals: list[dict] = field(default_factory=list)

    def add(self, result: dict) -> None:
        status = result["status"]
        if status == "accepted":
            self.accepted += 1
        elif status == "duplicate":
            self.duplicate += 1
        else:
            self.refused += 1
            if len(self.refusals) < KEEP_REFUSALS:
                self.refusals.append(result)

    @property
    def ok(self) -> bool:
        return self.refused == 0

    def as_dict(self) -> dict:
        return {"accepted": self.accepted, "duplicate": self.duplicate, "refused": self.refused, "retried": self.retried, "refusals": self.refusals}


def refusal(subject: str, error: Refused, seq: int | None = None) -> dict:
    """A locally refused event, shaped like an API result."""
    return {"index": None, "event_id": None, "subject": subject, "seq": seq, "status": "refused", **error.as_dict()}


# ---------------------------------------------------------------- next events


def next_events(
    signer: Signer,
    subject_type: str,
    subjects: Iterable[str],
    kind: str,
    payload: dict,
    heads: dict[str, dict | None],
    *,
    new_chain_ok: bool = False,
) -> tuple[list[SignedEvent], list[dict]]:
    """Sign the next ``kind`` event of each subject on top of its head.

    A subject without a head is refused as ``unknown_subject`` unless
    ``new_chain_ok`` (then its event is seq 0). A subject listed twice gets a
    second event chained on the first, as the ledger would see them.
    Returns (signed events, local refusals).
    """
    local = dict(heads)
    events: list[SignedEvent] = []
    refused: list[dict] = []
    for subject in subjects:
        head = local.get(subject)
        if head is None and not new_chain_ok:
            refused.append(refusal(subject, Refused("unknown_subject", f"{subject_type} {subject} does not exist", field="subject")))
            continue
        seq, prev = (0, GENESIS_HASH) if head is None else (head["seq"] + 1, bytes.fromhex(head["hash"]))
        signed = signer.sign(subject_type, subject, kind, payload, seq=seq, prev_hash=prev)
        local[subject] = {"seq": seq, "hash": signed.hash.hex(), "broken": None}
        events.append(signed)
    return events, refused


def chunked(items: Iterable, size: int) -> Iterator[list]:
    """Consecutive lists of at most ``size`` items, consuming ``items`` lazily."""
    it = iter(items)
    while chunk := list(itertools.islice(it, size)):
        yield chunk


def _screen(subject_type: str, subjects: list[str]) -> tuple[list[str], list[dict]]:
    """Split subjects into syntactically valid ones and local refusals."""
    valid, refused = [], []
    for subject in subjects:
        try:
            if subject_type == "label":
                gs1.validate_serial(subject, "subject")
            elif subject_type == "actor":
                validate_actor_id(subject, "subject")
            elif subject_type == "container":
                gs1.validate_sscc(subject, "subject")
            else:
                gs1.split_lot_key(subject)
        except Refused as exc:
            refused.append(refusal(subject, exc))
        else:
            valid.append(subject)
    return valid, refused


def append_next(
    client: Client,
    signer: Signer,
    subject_type: str,
    subjects: Iterable[str],
    kind: str,
    payload: dict,
    *,
    new_chain_ok: bool = False,
    chunk: int = DEFAULT_CHUNK,
    on_progress: Progress | None = None,
) -> Report:
    """Append the next ``kind`` event to every subject: fetch heads, sign, post, report.

    Works in chunks of ``chunk`` subjects (one heads request and one events
    request each). Events refused as ``stale_head`` (another writer got there
    first) are rebuilt on fresh heads and sent once more.
    """
    signer.check(subject_type, kind, payload)
    report = Report()
    for group in chunked(subjects, chunk):
        valid, bad = _screen(subject_type, group)
        for item in bad:
            report.add(item)
        _append_group(client, signer, subject_type, valid, kind, payload, new_chain_ok, report)
        if on_progress:
            on_progress(len(group))
    return report


def _append_group(client: Client, signer: Signer, subject_type: str, subjects: list[str], kind: str, payload: dict, new_chain_ok: bool, report: Report) -> None:
    pending = subjects
    for attempt in range(STALE_RETRIES + 1):
        if not pending:
            return
        heads = client.heads(subject_type, pending)
        events, refused = next_events(signer, subject_type, pending, kind, payload, heads, new_chain_ok=new_chain_ok)
        for item in refused:
            report.add(item)
        results = client.post_events(events) if events else []
        stale = [r for r in results if r["status"] == "refused" and r.get("code") == "stale_head"]
        final = attempt == STALE_RETRIES or not stale
        retry = {id(r) for r in stale} if not final else set()
        for result in results:
            if id(result) not in retry:
                report.add(result)
        if final:
            return
        report.retried += len(stale)
        pending = [r["subject"] for r in stale]


def submit(client: Client, events: Sequence[SignedEvent]) -> Report:
    """Post already-built events (new chains: registrations, bootstrap) and report."""
    report = Report()
    for result in client.post_events(events):
        report.add(result)
    return report


# ---------------------------------------------------------------- issuance


@dataclass(frozen=True)
class LabelRow:
    serial: str
    gtin: str
    lot: str
    expiry: str | None
    uri: str
    pin: str | None = None  # a double-layer label's PIN: for the printer's CSV only

    def as_csv(self) -> tuple:
        base = (self.serial, self.gtin, self.lot, self.expiry or "", self.uri)
        return base if self.pin is None else base + (self.pin,)


def check_expiry(expiry: str | None) -> None:
    """Refuse an expiry that is not a YYYY-MM-DD calendar date."""
    if expiry is None:
        return
    try:
        if len(expiry) != 10:
            raise ValueError
        datetime.strptime(expiry, "%Y-%m-%d")
    except ValueError:
        raise Refused("invalid_field", f"expiry {expiry!r} is not a date YYYY-MM-DD", field="expiry") from None


def issue_labels(
    client: Client,
    signer: Signer,
    payload: dict,
    count: int,
    *,
    resolver_host: str,
    batch: int = DEFAULT_CHUNK,
    on_rows: Callable[[list[LabelRow]], None] | None = None,
    on_progress: Progress | None = None,
    pin_digits: int | None = None,
) -> Report:
    """Issue ``count`` labels with ``payload`` (see :func:`issued_payload`) in batches.

    With ``pin_digits``, each label gets a fresh scratch-off PIN: only its
    salted slow hash goes into the signed event; the PIN itself reaches
    nothing but ``on_rows`` (the printer's CSV).

    Each batch is one request; the next batch is signed while the server
    checks the current one, and a batch's accepted labels go to ``on_rows``
    as soon as it is answered, so at most two batches are ever held. Issuing
    stops after a batch with refusals: the next batches would meet the same
    reason (the batch already signed is never sent).
    """
    signer.check("label", "Issued", payload)
    report = Report()

    def build(size: int) -> tuple[list[SignedEvent], dict]:
        serials = [gs1.new_serial() for _ in range(size)]
        pinned = pins.pins_for(serials, pin_digits) if pin_digits else {}
        events = [signer.sign("label", s, "Issued", {**payload, "pin_hash": pinned[s][1]} if pinned else payload) for s in serials]
        return events, pinned

    def settle(events: list[SignedEvent], pinned: dict, results: list[dict]) -> None:
        rows = []
        for result in results:
            report.add(result)
            if result["status"] != "refused":
                signed = events[result["index"]]
                rows.append(_row(signed, resolver_host, pinned.get(signed.event.subject, (None,))[0]))
        if on_rows and rows:
            on_rows(rows)
        if on_progress:
            on_progress(len(events))

    # Sign batch k+1 while batch k is with the server: the two sides overlap
    # instead of taking turns (at most two batches are ever held).
    remaining = count
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="issue-post") as poster:
        in_flight = None
        while remaining > 0 or in_flight:
            built = None
            if remaining > 0:
                size = min(batch, remaining)
                built = build(size)
                remaining -= size
            if in_flight:
                events, pinned, future = in_flight
                settle(events, pinned, future.result())
                in_flight = None
                if report.refused:
                    break  # the next batches would meet the same reason; `built` is never sent
            if built:
                in_flight = (built[0], built[1], poster.submit(client.post_events, built[0]))
    return report


def issue_label_batches(
    client: Client,
    signer: Signer,
    payload: dict,
    count: int,
    *,
    resolver_host: str,
    batch: int = batches.MAX_BATCH_LABELS,
    on_rows: Callable[[list[LabelRow]], None] | None = None,
    on_progress: Progress | None = None,
    pin_digits: int | None = None,
    seal_public_key: bytes | None = None,
) -> Report:
    """Issue ``count`` labels as batch events (event.v3) of up to ``batch`` labels each.

    One signature per batch over the Merkle root of its labels (:mod:`ledger.batches`).
    With ``pin_digits`` each label gets a fresh PIN; the batch carries only PIN
    commitments and its PIN secret sealed to ``seal_public_key`` (the verification
    service's key, :mod:`ledger.commitments`), so nobody can test a PIN offline; the PIN
    itself reaches nothing but ``on_rows`` (the printer's CSV). The next batch is built
    and signed while the current one is with the server; a refused batch stops the run
    (nothing of it was written) and the batch already built is never sent. The report
    counts labels.
    """
    signer.check("label", "Issued", payload)
    size_limit = min(batch, batches.MAX_BATCH_LABELS)
    report = Report()

    def build(size: int) -> tuple[batches.Batch, dict[str, str]]:
        serials = [gs1.new_serial() for _ in range(size)]
        chosen = {s: pins.new_pin(pin_digits) for s in serials} if pin_digits else None
        built = batches.issuance(payload, serials, actor=signer.actor, key=signer.key, pins=chosen, seal_public_key=seal_public_key)
        return built, chosen or {}

    def settle(built: batches.Batch, chosen: dict[str, str], result: dict) -> None:
        n = len(built.steps)
        if result["status"] == "refused":
            report.refused += n
            if len(report.refusals) < KEEP_REFUSALS:
                report.refusals.append({**result, "labels": n})
        else:
            if result["status"] == "accepted":
                report.accepted += n
            else:
                report.duplicate += n
            if on_rows:
                p = built.signed.event.payload
                on_rows([LabelRow(s.serial, p["gtin"], p["lot"], p["expiry"], gs1.digital_link_uri(p["gtin"], s.serial, resolver_host), chosen.get(s.serial))
                         for s in built.steps])
        if on_progress:
            on_progress(n)

    remaining = count
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="issue-post") as poster:
        in_flight = None
        while remaining > 0 or in_flight:
            built = None
            if remaining > 0:
                size = min(size_limit, remaining)
                built = build(size)
                remaining -= size
            if in_flight:
                settle(in_flight[0], in_flight[1], in_flight[2].result())
                in_flight = None
                if report.refused:
                    break
            if built:
                in_flight = (built[0], built[1], poster.submit(client.post_batch_event, built[0].signed, built[0].manifest))
    return report


# The single event each batch movement stands for (what ``Signer.check`` knows).
_MOVEMENT_OF = {v: k for k, v in batches.STEP_KINDS.items()}


def move_labels(
    client: Client,
    signer: Signer,
    kind: str,
    serials: Iterable[str],
    payload: dict,
    *,
    batch: int = batches.MAX_BATCH_LABELS,
    on_progress: Progress | None = None,
) -> Report:
    """Ship, receive, recall or decommission labels as batch events (event.v3), up to ``batch`` each.

    ``kind`` is the single event's kind (``Shipped``, ...) and ``payload`` its payload, as for
    :func:`append_next`. One signature per batch over the Merkle root of the labels' steps;
    a shipment's consignee, territory and channel are sealed in the body and their opening
    sent beside it (:func:`ledger.batches.movement`). A batch is accepted or refused whole
    (the report counts labels and keeps the refusal, which names the label); a batch that
    lost a race (``stale_head``) is rebuilt on fresh heads and sent once more. A batch with
    a label the ledger does not know is refused here whole, before signing.
    """
    signer.check("label", kind, payload)
    batch_kind = _MOVEMENT_OF[kind]
    confidential = {k: payload[k] for k in ("consignee", "territory", "channel")} if kind == "Shipped" else None
    report = Report()

    def sign(valid: list[str]) -> tuple[batches.Batch, batches.Opening | None] | None:
        """The batch of ``valid`` on their current heads, or None (refused here: a label unknown)."""
        heads = client.heads("label", valid)
        unknown = [s for s in valid if heads.get(s) is None]
        if unknown:
            _refuse_batch(report, len(valid), refusal(unknown[0], Refused("unknown_subject", f"nothing sent: label {unknown[0]} (and {len(unknown) - 1} more) does not exist", field="serial")))
            return None
        return batches.movement(batch_kind, [(s, heads[s]["seq"] + 1, bytes.fromhex(heads[s]["hash"])) for s in valid], actor=signer.actor, key=signer.key,
                                region=payload.get("region"), reason=payload.get("reason"), confidential=confidential)

    def post(built: tuple[batches.Batch, batches.Opening | None]) -> dict:
        batch, opening = built
        return client.post_batch_event(batch.signed, batch.manifest, None if opening is None else opening.as_json())

    def settle(valid: list[str], result: dict) -> None:
        for _ in range(STALE_RETRIES):  # lost a race: rebuilt on fresh heads and sent again
            if not (result["status"] == "refused" and result.get("code") == "stale_head"):
                break
            report.retried += len(valid)
            built = sign(valid)
            if built is None:
                return
            result = post(built)
        if result["status"] == "refused":
            _refuse_batch(report, len(valid), result)
        elif result["status"] == "accepted":
            report.accepted += len(valid)
        else:
            report.duplicate += len(valid)

    # The next batch's heads are read and it is signed while the current one is with the server
    # (other labels; a label listed again in a later group makes that batch lose the race,
    # stale_head, and it is rebuilt on fresh heads once the earlier one is answered).
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="move-post") as poster:
        in_flight = None
        for group in chunked(serials, min(batch, batches.MAX_BATCH_LABELS)):
            valid, bad = _screen("label", list(dict.fromkeys(group)))
            for item in bad:
                report.add(item)
            built = sign(valid) if valid else None
            if in_flight:
                settle(in_flight[1], in_flight[2].result())
                if on_progress:
                    on_progress(in_flight[0])
            in_flight = None
            if built is None:
                if on_progress:
                    on_progress(len(group))
                continue
            in_flight = (len(group), valid, poster.submit(post, built))
        if in_flight:
            settle(in_flight[1], in_flight[2].result())
            if on_progress:
                on_progress(in_flight[0])
    return report


def _refuse_batch(report: Report, labels: int, result: dict) -> None:
    report.refused += labels
    if len(report.refusals) < KEEP_REFUSALS:
        report.refusals.append({**result, "labels": labels})


def _row(signed: SignedEvent, resolver_host: str, pin: str | None = None) -> LabelRow:
    e = signed.event
    p = e.payload
    return LabelRow(e.subject, p["gtin"], p["lot"], p["expiry"], gs1.digital_link_uri(p["gtin"], e.subject, resolver_host), pin)


class LabelCsv:
    """The printer's CSV (``serial,gtin,lot,expiry,uri``), written row batch by row batch."""

    def __init__(self, fh, *, write_header: bool = True, pins: bool = False):
        self._fh = fh
        self._writer = csv.writer(fh)
        if write_header:
            self._writer.writerow(CSV_HEADER + (("pin",) if pins else ()))

    def write(self, rows: list[LabelRow]) -> None:
        self._writer.writerows(r.as_csv() for r in rows)
        # Accepted labels exist on the ledger: get them onto disk now, not at exit.
        self._fh.flush()


def serials_from_csv(path: str | Path) -> Iterator[str]:
    """The ``serial`` column of a CSV file with a header row, streamed."""
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        if "serial" not in (reader.fieldnames or ()):
            raise Refused("invalid_field", f"{path} has no 'serial' column in its header", field="from-csv")
        for row in reader:
            serial = (row.get("serial") or "").strip()
            if serial:
                yield serial


def count_csv_rows(path: str | Path) -> int:
    """Data rows of a CSV file (for a progress bar's length), read in one streaming pass."""
    with open(path, newline="") as fh:
        return max(sum(1 for _ in csv.reader(fh)) - 1, 0)
