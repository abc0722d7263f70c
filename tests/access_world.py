"""A module-scoped world for the "who reads what" tests: every role, two producers, a real API subprocess.

Built once per module (own database, topic prefix, run dir and log key): the
founding actors, acme's labels (one shipped to and received by the
distributor, one scanned by the gateway), acme's lot with a pallet holding two
of its labels, other-producer's label and lot, relayed to Kafka with signed
checkpoints and projected. Requests are signed with :meth:`AccessWorld.get`.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from consumers.checkpointer import load_or_create_log_key
from ledger import gs1
from ledger.config import Settings
from ledger.keys import KeyPair
from ledger.service import Ledger
from tests.conftest import Service, free_port, wait_for_api
from tests.helpers import Cast, gtin, issued_payload, scanned_payload, shipped_payload, signed_get
from tests.pipeline import project_all, relay_all
from traceledger import sandbox

OTHER_PREFIX = "6909876"  # other-producer's GS1 company prefix (tests.helpers.Cast)


def other_gtin(item: str = "00011") -> str:
    body = "0" + OTHER_PREFIX + item
    return body + str(gs1.gtin_check_digit(body))


@dataclass
class AccessWorld:
    url: str
    settings: Settings
    ledger: Ledger
    cast: Cast
    log_key: KeyPair
    run_dir: Path
    names: dict[str, str] = field(default_factory=dict)  # purpose -> serial, SSCC or lot key
    bodies: dict[str, str] = field(default_factory=dict)  # event id -> base64 body
    signers: dict[str, str] = field(default_factory=dict)  # event id -> actor who signed it
    subjects: dict[str, tuple[str, str]] = field(default_factory=dict)  # event id -> (subject type, subject)
    service: Service | None = None

    def get(self, path: str, as_actor: str | None = None, **params) -> httpx.Response:
        """GET ``path`` (query from ``params``), signed by ``as_actor``'s key when given."""
        return signed_get(self.url, path, self.cast.keys[as_actor] if as_actor else None, params or None, timeout=60)

    def append(self, events) -> None:
        results = self.ledger.append(events)
        assert all(r.status == "accepted" for r in results), [r.as_dict() for r in results if r.status != "accepted"]
        for s in events:
            self.bodies[s.event.event_id] = base64.b64encode(s.body).decode()
            self.signers[s.event.event_id] = s.event.actor
            self.subjects[s.event.event_id] = (s.event.subject_type, s.event.subject)

    def sync(self) -> None:
        relay_all(self.settings)
        project_all(self.settings)


def build(base_settings: Settings, created: dict, tmp: Path) -> AccessWorld:
    run_id = uuid.uuid4().hex[:10]
    db, prefix = f"tl_test_{run_id}", f"test-{run_id}."
    sandbox.create_database(base_settings, db)
    created["dbs"].append(db)
    created["prefixes"].append(prefix)
    port = free_port()
    settings = base_settings.with_(pg_db=db, topic_prefix=prefix, partitions=4, run_dir=tmp, log_key=tmp / "log.key",
                                   kafka_credentials=base_settings.kafka_credentials_dir, checkpoint_events=10,
                                   checkpoint_seconds=3600, listen_port=port, api_url=f"http://127.0.0.1:{port}")
    cast = Cast()
    w = AccessWorld(settings.api_url, settings, Ledger(settings), cast, load_or_create_log_key(settings.log_key), tmp)
    w.append(cast.founding_events())
    shipped, packed, scanned, other = gs1.new_serial(), [gs1.new_serial(), gs1.new_serial()], gs1.new_serial(), gs1.new_serial()
    pallet = gs1.make_sscc(0, "6901234", 77)
    w.names.update(shipped=shipped, scanned=scanned, packed=packed[0], other=other, pallet=pallet,
                   lot=gs1.lot_key(gtin(), "L1"), other_lot=gs1.lot_key(other_gtin(), "S1"))
    events = [cast.issue(s) for s in (shipped, scanned, *packed)]
    events.append(cast.event("other-producer", "label", other, "Issued", issued_payload(g=other_gtin(), lot="S1")))
    events.append(cast.event("acme", "label", shipped, "Shipped", shipped_payload("distributor")))
    events.append(cast.event("acme", "container", pallet, "ContainerCreated", {"level": "pallet", "region": "4403"}))
    w.append(events)
    w.append([cast.event("distributor", "label", shipped, "Received", {"region": "4403"}),
              cast.event("gateway", "label", scanned, "Scanned", scanned_payload())])
    pack = [cast.event("acme", "container", pallet, "Packed", {"children": packed, "region": "4403"})]
    pack += [cast.event("acme", "label", s, "PackedInto", {"container": pallet}) for s in packed]
    results = w.ledger.append(pack, atomic=True)
    assert all(r.status == "accepted" for r in results), [r.as_dict() for r in results]
    for s in pack:
        w.bodies[s.event.event_id] = base64.b64encode(s.body).decode()
        w.signers[s.event.event_id], w.subjects[s.event.event_id] = s.event.actor, (s.event.subject_type, s.event.subject)
    w.sync()
    w.service = Service("traceledger.api", settings, tmp).start()
    wait_for_api(w.service, settings.api_url)
    return w


@pytest.fixture(scope="module")
def access_world(base_settings, _created, tmp_path_factory):
    w = build(base_settings, _created, tmp_path_factory.mktemp("access"))
    yield w
    w.service.stop()
    w.ledger.close()
