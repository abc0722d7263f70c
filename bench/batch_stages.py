"""Where a batch movement's time goes, stage by stage, in one process (issue 16).

``python -m bench.batch_stages [--labels 8192] [--rounds 3]``. One throw-away database (no Kafka,
no API): the ledger (:class:`ledger.service.Ledger`) stores one ``BatchIssued`` of ``--labels``
labels (at most one batch), then, ``--rounds`` times over fresh labels, times each stage of a
shipment and a receipt of all of them, in µs per label:

- ``heads``: what the CLI asks before signing (``Ledger.heads``: each label's chain loaded);
- ``sign``: the CLI's work (``batches.movement``: manifest, Merkle root, one signature);
- ``append``: the ledger's check and store (``Ledger.append_batch``);
- ``project``: the verification projector's check and apply of the batch record, with its
  flush, in one transaction (what the consumer does per poll), as records the relay would send
  (also for the ``BatchIssued`` that issues the labels);
- ``audit_apply``: ``batches.apply_movement`` alone (the per-label law every verifier runs).

Each stage's best round is printed, with the same run's Ed25519 sign rate as the baseline
(the issue's unit: labels/s against one core's raw sign rate). The machine is shared: compare
figures of the same run, not across runs.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from dataclasses import dataclass

import psycopg

from bench.run import say
from ledger import batches
from ledger.config import Settings
from ledger.events import new_event
from ledger.keys import KeyPair
from ledger.registry import ActorRegistry
from ledger.service import Ledger
from projections.verification import VerificationProjector
from traceledger import commands, sandbox

GTIN = "06901234000016"


@dataclass
class _Record:
    """What the projector reads of a Kafka record (the relay's key, value and headers)."""

    key: bytes
    value: bytes
    headers: list
    topic: str = "label-events"
    partition: int = 0
    offset: int = 0


class _Feed:
    registry: ActorRegistry

    def __init__(self, registry: ActorRegistry):
        self.registry = registry

    def catch_up(self) -> int:
        return 0


def _sign_rate(n: int = 3000) -> float:
    key = KeyPair.generate("bench")
    msg = bytes(300)
    t = time.perf_counter()
    for _ in range(n):
        key.sign(msg)
    return n / (time.perf_counter() - t)


def _record(batch: batches.Batch, opening: batches.Opening | None) -> _Record:
    headers = [("manifest", batch.manifest)] + ([("opening", opening.to_bytes())] if opening else [])
    return _Record(batch.signed.event.subject.encode(), batch.signed.envelope, headers)


def _actors(ledger: Ledger, registry: ActorRegistry) -> dict[str, KeyPair]:
    keys = {name: KeyPair.generate(name) for name in ("registrar", "producer", "distributor")}
    for name, role, prefixes in (("registrar", "registrar", []), ("producer", "producer", ["6901234"]), ("distributor", "distributor", [])):
        payload = commands.actor_registered_payload(role, name, keys[name].public_key, prefixes)
        signed = new_event(subject_type="actor", subject=name, kind="ActorRegistered", payload=payload, actor="registrar",
                           key_id=keys["registrar"].key_id).sign(keys["registrar"])
        (result,) = ledger.append([signed])
        if result.status != "accepted":
            raise SystemExit(f"registering {name}: {result.as_dict()}")
        registry.apply(signed, len(registry.public_keys()))
    return keys


def stages(settings: Settings, labels: int, rounds: int) -> dict:
    ledger = Ledger(settings)
    registry = ActorRegistry()
    keys = _actors(ledger, registry)
    projector = VerificationProjector("verification", _Feed(registry))
    best: dict[str, float] = {}

    cpu: dict[str, float] = {}

    def clock(name: str, t: float) -> None:
        # Wall time (what a user waits; includes PostgreSQL's work) and this process's CPU
        # time since the stage began (steadier on a shared machine), best round of each.
        best[name] = min(best.get(name, float("inf")), (time.perf_counter() - t) / labels * 1e6)
        cpu[name] = min(cpu.get(name, float("inf")), (time.process_time() - started[0]) / labels * 1e6)

    started = [0.0]

    try:
        with psycopg.connect(settings.pg_conninfo) as conn:
            for r in range(rounds):
                serials = [f"S{r}{uuid.uuid4().hex[:6].upper()}{i:06d}" for i in range(labels)]
                issued = batches.issuance({"gtin": GTIN, "lot": f"L{r}", "product": "Bench battery"}, serials, actor="producer", key=keys["producer"])
                if ledger.append_batch(issued.signed, issued.manifest).status != "accepted":
                    raise SystemExit("issuance refused")
                t, started[0] = time.perf_counter(), time.process_time()
                _project(conn, projector, _record(issued, None))
                clock("BatchIssued project", t)
                for kind, actor, confidential in (("BatchShipped", "producer", {"consignee": "distributor", "territory": "44", "channel": "retail"}),
                                                  ("BatchReceived", "distributor", None)):
                    t, started[0] = time.perf_counter(), time.process_time()
                    heads = ledger.heads([("label", s) for s in serials])
                    clock(f"{kind} heads", t)
                    t, started[0] = time.perf_counter(), time.process_time()
                    batch, opening = batches.movement(kind, [(s, heads[s]["seq"] + 1, bytes.fromhex(heads[s]["hash"])) for s in serials],
                                                      actor=actor, key=keys[actor], confidential=confidential)
                    clock(f"{kind} sign", t)
                    t, started[0] = time.perf_counter(), time.process_time()
                    result = ledger.append_batch(batch.signed, batch.manifest, opening=opening)
                    clock(f"{kind} append", t)
                    if result.status != "accepted":
                        raise SystemExit(f"{kind} refused: {result.as_dict()}")
                    rec = _record(batch, opening)
                    t, started[0] = time.perf_counter(), time.process_time()
                    _project(conn, projector, rec)
                    clock(f"{kind} project", t)
                    states = [projector.rows[("label", s)].state for s in serials]  # after: the law re-run on the states before is below
                    signer = registry.lookup(None)(actor)
                    opened = batches.opened_fields(kind, batch.signed.event.payload, opening)
                    befores = [_before(st, kind, heads[st.serial]) for st in states]
                    t, started[0] = time.perf_counter(), time.process_time()
                    batches.apply_movement(batch, signer, opened, befores, registry.lookup(None))
                    clock(f"{kind} audit_apply", t)
                say(f"round {r + 1}: wall {json.dumps({k: round(v, 2) for k, v in best.items()})}")
                say(f"round {r + 1}: cpu {json.dumps({k: round(v, 2) for k, v in cpu.items()})}")
    finally:
        ledger.close()
    return best, cpu


def _project(conn: psycopg.Connection, projector: VerificationProjector, rec: _Record) -> None:
    """What the consumer does with a poll batch of one record: prepare, apply, flush, commit."""
    with conn.transaction(), conn.cursor() as cur:
        projector.prepare(cur, [rec])
        projector(cur, rec)
        projector.flush(cur)


def _before(after, kind: str, head: dict):
    """A label's state before ``kind`` from its state after (the projector's), for timing the law alone."""
    from dataclasses import replace

    fields = {"seq": head["seq"], "head": bytes.fromhex(head["hash"])}
    if kind == "BatchShipped":
        fields.update(status="issued", consignee=None, territory=None, channel=None)
    else:
        fields.update(status="in_transit", custodian="producer", consignee="distributor")
    return replace(after, **fields)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--labels", type=int, default=batches.MAX_BATCH_LABELS)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    base = Settings.from_env()
    db = f"tl_stages_{uuid.uuid4().hex[:8]}"
    sandbox.create_database(base, db)
    try:
        rate = _sign_rate()
        best, cpu = stages(base.with_(pg_db=db), min(args.labels, batches.MAX_BATCH_LABELS), args.rounds)
    finally:
        sandbox.drop(base, [db], [])
    total = {kind: sum(v for k, v in best.items() if k.startswith(kind) and not k.endswith("audit_apply")) for kind in ("BatchShipped", "BatchReceived")}
    out = {"labels": args.labels, "sign_rate_per_s": rate, "us_per_label": best, "cpu_us_per_label": cpu, "end_to_end_labels_per_s": {k: 1e6 / v for k, v in total.items()}}
    out["ratio_to_sign_rate"] = {k: v / rate for k, v in out["end_to_end_labels_per_s"].items()}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
