"""Fuzz the Kafka consumers: random and mutated records on ``label-events``.

Real envelopes from the relay are bit-flipped, truncated, given a wrong schema
fingerprint, re-keyed, re-signed badly, forked and replayed, and mixed with
random bytes and tombstones; all of it is produced to the topic the
verification projector and the detector consume. Every bad record must be
quarantined (with a reason) by both, neither may crash, and the read models
must be exactly what they were; an exact replay of a record already applied
has no effect at all (redelivery is normal on Kafka). Afterwards both keep
applying good events.
"""

from __future__ import annotations

import random

import psycopg
from kafka import KafkaProducer

from ledger import gs1
from ledger.encoding import envelope_codec
from ledger.events import SignedEvent
from ledger.keys import KeyPair
from ledger.record_headers import header
from ledger.service import Ledger
from tests.alerts_world import detect_all
from tests.helpers import Cast, scanned_payload, shipped_payload
from tests.pipeline import project_all, relay_all, topic_records

SEED = 7


def envelope(body: bytes, signature: bytes) -> bytes:
    return envelope_codec().encode({"body": body, "signature": signature})


def flip_bits(rng: random.Random, value: bytes) -> bytes:
    out = bytearray(value)
    for _ in range(rng.randint(1, 4)):
        i = rng.randrange(len(out))
        out[i] ^= 1 << rng.randrange(8)
    return bytes(out)


def snapshot(settings) -> dict:
    """Every row of both read models (not offsets or quarantine)."""
    tables = {"verification": ["labels ORDER BY serial", "lots ORDER BY gtin, lot", "events ORDER BY subject_type, subject, seq"],
              "alerts": ["labels ORDER BY serial", "events ORDER BY subject_type, subject, seq", "alerts ORDER BY id", "watch ORDER BY serial"]}
    with psycopg.connect(settings.pg_conninfo) as conn:
        return {f"{schema}.{t}": conn.execute(f"SELECT * FROM {schema}.{t}").fetchall() for schema, ts in tables.items() for t in ts}


def quarantined(settings, schema: str) -> list[tuple]:
    with psycopg.connect(settings.pg_conninfo) as conn:
        return conn.execute(f'SELECT "offset", partition, code FROM {schema}.quarantine ORDER BY partition, "offset"').fetchall()


def bad_records(rng: random.Random, cast: RecordingCast, real: list, serials: list[str]) -> list[tuple[str, bytes | None, bytes | None, list]]:
    """(what, key, value, headers) of records that must all be quarantined."""
    out = []
    real = [r for r in real if r.key and r.key.decode() in serials]

    def pick():
        r = rng.choice(real)
        return r.key, r.value, list(r.headers or [])

    for _ in range(25):  # random bytes, from empty to a few hundred
        out.append(("random_bytes", rng.choice(serials).encode(), rng.randbytes(rng.randrange(0, 400)), []))
    for _ in range(60):  # bit flips of real envelopes
        key, value, headers = pick()
        out.append(("bit_flip", key, flip_bits(rng, value), headers))
    for _ in range(25):  # truncations
        key, value, headers = pick()
        out.append(("truncated", key, value[: rng.randrange(1, len(value))], headers))
    for _ in range(10):  # a valid envelope whose body names a schema fingerprint nobody knows
        key, value, headers = pick()
        signed = SignedEvent.from_envelope(value)
        body = signed.body[:2] + rng.randbytes(8) + signed.body[10:]
        out.append(("unknown_fingerprint", key, envelope(body, signed.signature), headers))
    for serial in rng.sample(serials, 10):  # a real signer's next event with somebody else's signature
        e = cast.event("gateway", "label", serial, "Scanned", scanned_payload(), advance=False)
        other = cast.event("gateway", "label", serial, "Scanned", scanned_payload(region="110105"), advance=False)
        out.append(("wrong_signature", serial.encode(), envelope(e.body, other.signature), []))
    for serial in rng.sample(serials, 5):  # signed with a key the actor never registered
        e = cast.event("gateway", "label", serial, "Scanned", scanned_payload(), key=KeyPair.generate("gateway"), advance=False)
        out.append(("unregistered_key", serial.encode(), e.envelope, []))
    for serial in rng.sample([s for s in serials if cast.heads[("label", s)][0] > 0], 5):  # a well-signed rival for a taken position: a fork
        seq, _ = cast.heads[("label", serial)]
        rival = cast.event("regulator", "label", serial, "FlaggedCounterfeit", {"reason": "forged fork", "region": None},
                           seq=seq, prev=cast_prev(cast, serial, seq), advance=False)
        out.append(("fork", serial.encode(), rival.envelope, []))
    for _ in range(5):  # a real record under another label's key
        key, value, headers = pick()
        out.append(("wrong_key", rng.choice([s for s in serials if s.encode() != key]).encode(), value, headers))
    for serial in rng.sample(serials, 5):  # a valid next event whose log_index header is garbage
        e = cast.event("gateway", "label", serial, "Scanned", scanned_payload(), advance=False)
        out.append(("garbage_log_index", serial.encode(), e.envelope, [("log_index", rng.choice([b"", b"x1", b"-", b"9" * 40]))]))
    for _ in range(5):  # tombstones (no value) and keyless junk
        out.append(("tombstone", rng.choice(serials).encode(), None, []))
        out.append(("keyless", None, rng.randbytes(rng.randrange(1, 100)), []))
    return out


def cast_prev(cast: RecordingCast, serial: str, seq: int) -> bytes:
    """The hash of ``serial``'s event ``seq - 1``, as the test cast recorded it."""
    return cast.prev_hashes[(serial, seq - 1)]


class RecordingCast(Cast):
    """A :class:`Cast` that remembers every hash it chained, to build forks later."""

    def __post_init__(self):
        super().__post_init__()
        self.prev_hashes: dict[tuple[str, int], bytes] = {}

    def event(self, *args, advance=True, **kw):
        signed = super().event(*args, advance=advance, **kw)
        if advance:
            self.prev_hashes[(signed.event.subject, signed.event.seq)] = signed.hash
        return signed


def test_fuzzed_records_are_quarantined_and_change_nothing(settings):
    rng = random.Random(SEED)
    cast = RecordingCast()
    ledger = Ledger(settings)
    try:
        serials = [gs1.new_serial() for _ in range(30)]
        events = cast.founding_events() + [cast.issue(s) for s in serials]
        for s in serials[:20]:
            events.append(cast.event("acme", "label", s, "Shipped", shipped_payload("distributor")))
            events.append(cast.event("gateway", "label", s, "Scanned", scanned_payload()))
        assert all(r.status == "accepted" for r in ledger.append(events))
        relay_all(settings)
        project_all(settings)
        detect_all(settings)
        before = snapshot(settings)
        real = topic_records(settings, settings.label_topic)
        assert all(header(r, "log_index") is not None for r in real)

        bad = bad_records(rng, cast, real, serials)
        replays = [("replay", r.key, r.value, list(r.headers or [])) for r in rng.sample(real, 10)]
        producer = KafkaProducer(**settings.kafka_client_config())
        sent = [(what, producer.send(settings.label_topic, key=key, value=value, headers=headers)) for what, key, value, headers in bad + replays]
        producer.flush()
        producer.close()
        where = {(f.get().partition, f.get().offset): what for what, f in sent}

        projector = project_all(settings)
        detector = detect_all(settings).consumer
        for consumer, schema in ((projector, "verification"), (detector, "alerts")):
            held = quarantined(settings, schema)
            escaped = sorted(what for (p, o), what in where.items() if what != "replay" and (o, p) not in {(o2, p2) for o2, p2, _ in held})
            assert not escaped, (schema, escaped)
            assert len(held) == len(bad)
            assert consumer.quarantined == len(bad)
            assert all(code for *_, code in held)
        assert snapshot(settings) == before, "a fuzzed or replayed record changed a read model"

        # Both consumers keep going: a good event after the junk is applied.
        assert ledger.append([cast.event("gateway", "label", serials[0], "Scanned", scanned_payload())])[0].status == "accepted"
        relay_all(settings)
        project_all(settings)
        detect_all(settings)
        with psycopg.connect(settings.pg_conninfo) as conn:
            for schema in ("verification", "alerts"):
                n = conn.execute(f"SELECT scan_count FROM {schema}.labels WHERE serial = %s", (serials[0],)).fetchone()[0]
                assert n == 2, schema
    finally:
        ledger.close()
