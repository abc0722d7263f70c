"""The demo scenario, run through the HTTP API exactly as a user would with the CLI.

Registrar, two producers, a distributor, a retailer, a regulator and the
consumer-scan gateway; issue labels, ship, receive, ship onward, receive,
consumer scans, a lot recall and a counterfeit flag. The set-up is idempotent:
keys in ``<out_dir>/keys/`` are reused, actors already registered with those
keys are left alone, an already recalled lot is not recalled twice. Each run
issues a fresh set of labels and rewrites ``<out_dir>/labels.csv`` with them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ledger import gs1
from ledger.config import Settings
from ledger.errors import Refused
from ledger.keys import KeyPair
from traceledger import commands as cmd
from traceledger.client import Client

Echo = Callable[[str], None]


@dataclass(frozen=True)
class Member:
    key_name: str  # file name under keys/, by role
    actor_id: str
    role: str
    name: str
    gtin_prefixes: tuple[str, ...] = ()


REGISTRAR = Member("registrar", "registrar", "registrar", "Anti-Counterfeit Label Association")
ACME = Member("producer", "acme-batteries", "producer", "Acme Batteries Co.", ("6901234",))
ZHEJIANG = Member("producer2", "zhejiang-cables", "producer", "Zhejiang Cables Ltd.", ("6909876",))
DISTRIBUTOR = Member("distributor", "gd-distribution", "distributor", "Guangdong Distribution Co.")
RETAILER = Member("retailer", "sz-retail", "retailer", "Shenzhen Retail Ltd.")
REGULATOR = Member("regulator", "samr-regulator", "regulator", "Market Supervision Administration")
GATEWAY = Member("gateway", "gateway", "gateway", "Consumer scan gateway")
DETECTOR = Member("detector", "detector", "detector", "Alert detector")  # signs AlertRaised (event.v4)
MEMBERS = (REGISTRAR, ACME, ZHEJIANG, DISTRIBUTOR, RETAILER, REGULATOR, GATEWAY, DETECTOR)

# GTINs are built from the producers' prefixes with a computed check digit.
ACME_GTIN = "0690123400001" + str(gs1.gtin_check_digit("0690123400001"))
CABLE_GTIN = "0690987600001" + str(gs1.gtin_check_digit("0690987600001"))
BATTERY = "E-bike battery 48V 20Ah"
CABLE = "Flame-retardant cable 2.5mm²"
LOT_A, LOT_B, CABLE_LOT = "L2026A", "L2026B", "ZJ2026-03"
CABLE_LABELS = 300
ONWARD = 100  # labels the distributor ships on to the retailer
CONSUMER_REGION = "440305"  # Shenzhen, Nanshan
PROJECTION_WAIT_SECONDS = 60.0


def run_demo(
    settings: Settings,
    out_dir: str | Path = ".demo",
    labels: int = 3000,
    *,
    echo: Echo = lambda line: print(line, flush=True),
    client: Client | None = None,
) -> dict:
    """Run the scenario against ``settings.api_url``; return the serials of interest.

    The answer holds ``genuine``, ``recalled`` and ``counterfeit`` serials,
    plus ``at_distributor`` (one that can still be shipped on), the paths
    written and how many labels were issued.
    """
    if labels < 10:
        raise ValueError("the demo needs at least 10 labels")
    owned = client is None
    client = client or Client(settings=settings)
    try:
        return Scenario(settings, Path(out_dir), labels, echo, client).run()
    finally:
        if owned:
            client.close()


class Scenario:
    """The demo's steps against one API (:mod:`traceledger.simulate` reuses its keys and registrations)."""

    def __init__(self, settings: Settings, out_dir: Path, labels: int, echo: Echo, client: Client):
        self.settings, self.out_dir, self.labels, self.echo, self.client = settings, out_dir, labels, echo, client
        self.started = time.monotonic()
        self.signers: dict[str, cmd.Signer] = {}

    def say(self, line: str) -> None:
        self.echo(f"[demo {time.monotonic() - self.started:6.1f}s] {line}")

    # ------------------------------------------------------------ steps

    def run(self) -> dict:
        self.client.health()
        self.say(f"API {self.client.base_url} is up")
        self.load_keys()
        self.init_registrar()
        self.register_members()
        batches = self.issue_all()
        acme_a, acme_b = batches[(ACME_GTIN, LOT_A)], batches[(ACME_GTIN, LOT_B)]
        shipped_a, shipped_b = acme_a[: len(acme_a) // 2], acme_b[: len(acme_b) // 2]
        self.step("ship to gd-distribution", ACME, shipped_a + shipped_b, "Shipped", cmd.shipped_payload(DISTRIBUTOR.actor_id, "44", "offline_retail", region="440300"))
        self.step("receive at gd-distribution", DISTRIBUTOR, shipped_a + shipped_b, "Received", cmd.received_payload(region="440100"))
        onward = shipped_a[:ONWARD]
        self.step("ship on to sz-retail", DISTRIBUTOR, onward, "Shipped", cmd.shipped_payload(RETAILER.actor_id, "4403", "offline_retail", region="440100"))
        self.step("receive at sz-retail", RETAILER, onward, "Received", cmd.received_payload(region=CONSUMER_REGION))
        genuine, counterfeit, recalled = onward[0], onward[-1], shipped_b[0]
        self.consumer_scans(genuine, onward[1:-1][:5])
        self.recall_lot(ACME_GTIN, LOT_B)
        self.step("flag counterfeit", REGULATOR, [counterfeit], "FlaggedCounterfeit", cmd.flagged_payload("seized item bearing a copied code", region=CONSUMER_REGION))
        for serial, verdict in ((genuine, "genuine"), (recalled, "recalled"), (counterfeit, "counterfeit")):
            self.wait_for(serial, verdict)
        result = {
            "genuine": genuine,
            "recalled": recalled,
            "counterfeit": counterfeit,
            "at_distributor": shipped_a[len(onward)] if len(shipped_a) > len(onward) else shipped_b[-1],
            "issued": sum(len(v) for v in batches.values()),
            "labels_csv": str(self.out_dir / "labels.csv"),
            "keys_dir": str(self.out_dir / "keys"),
            "api": self.client.base_url,
        }
        self.summary(result)
        return result

    def load_keys(self) -> None:
        keys_dir = self.out_dir / "keys"
        made = []
        for m in MEMBERS:
            path = self._key_path(m, keys_dir)
            if not path.exists():
                KeyPair.generate(m.actor_id).save(path)
                made.append(m.key_name)
            self.signers[m.actor_id] = cmd.Signer(KeyPair.load(path), m.actor_id)
        self.say(f"keys in {keys_dir}: " + (f"generated {', '.join(made)}" if made else "reused"))

    def _key_path(self, m: Member, keys_dir: Path) -> Path:
        # The API signs consumer scans with TRACELEDGER_GATEWAY_KEY: register that very key.
        if m is GATEWAY and self.settings.gateway_key is not None:
            return Path(self.settings.gateway_key)
        if m is DETECTOR and self.settings.detector_key is not None:  # the detector signs with TRACELEDGER_DETECTOR_KEY
            return Path(self.settings.detector_key)
        return keys_dir / f"{m.key_name}.key"

    def init_registrar(self) -> None:
        signer = self.signers[REGISTRAR.actor_id]
        if self._registered(REGISTRAR):
            self.say("registrar already registered with this key: init skipped")
            return
        payload = cmd.actor_registered_payload("registrar", REGISTRAR.name, signer.key.public_key, [])
        self._require(cmd.submit(self.client, [signer.sign("actor", REGISTRAR.actor_id, "ActorRegistered", payload)]), "init registrar")
        self.say(f"init: registrar {REGISTRAR.actor_id} registered itself")

    def register_members(self) -> None:
        registrar = self.signers[REGISTRAR.actor_id]
        events, skipped = [], []
        for m in MEMBERS[1:]:
            if self._registered(m):
                skipped.append(m.actor_id)
                continue
            payload = cmd.actor_registered_payload(m.role, m.name, self.signers[m.actor_id].key.public_key, m.gtin_prefixes)
            events.append(registrar.sign("actor", m.actor_id, "ActorRegistered", payload))
        if events:
            self._require(cmd.submit(self.client, events), "register actors")
        self.say(f"actors: registered {len(events)}" + (f", already there: {', '.join(skipped)}" if skipped else ""))

    def _registered(self, m: Member) -> bool:
        """True if ``m`` is registered with our key; refuse if it has another key."""
        found = self.client.actor(m.actor_id)
        if found is None:
            return False
        if found.get("key_id") != self.signers[m.actor_id].key.key_id:
            raise Refused(
                "key_mismatch",
                f"actor {m.actor_id} is registered with another key than {self.out_dir}/keys has; "
                "use the keys of that ledger or a fresh database",
                field="key",
            )
        return True

    def issue_all(self) -> dict[tuple[str, str], list[str]]:
        """Issue every producer's labels, streaming all of them into one labels.csv."""
        lot_b = self.labels // 2
        plan = [
            (ACME, cmd.issued_payload(ACME_GTIN, LOT_A, BATTERY, expiry="2029-06-30", region="440300"), self.labels - lot_b),
            (ACME, cmd.issued_payload(ACME_GTIN, LOT_B, BATTERY, expiry="2029-06-30", region="440300"), lot_b),
            (ZHEJIANG, cmd.issued_payload(CABLE_GTIN, CABLE_LOT, CABLE, region="330100"), CABLE_LABELS),
        ]
        serials: dict[tuple[str, str], list[str]] = {}
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with open(self.out_dir / "labels.csv", "w", newline="") as fh:
            sink = cmd.LabelCsv(fh)
            for producer, payload, count in plan:
                got = serials.setdefault((payload["gtin"], payload["lot"]), [])

                def keep(rows: list[cmd.LabelRow], got=got) -> None:
                    sink.write(rows)
                    got.extend(r.serial for r in rows)

                report = cmd.issue_labels(self.client, self.signers[producer.actor_id], payload, count, resolver_host=self.settings.resolver_host, on_rows=keep)
                self._require(report, f"issue {payload['lot']}")
                self.say(f"issue: {producer.actor_id} issued {report.accepted} x {payload['product']} (GTIN {payload['gtin']} lot {payload['lot']})")
        self.say(f"labels written to {self.out_dir / 'labels.csv'}")
        return serials

    def step(self, what: str, member: Member, serials: list[str], kind: str, payload: dict) -> None:
        report = cmd.append_next(self.client, self.signers[member.actor_id], "label", serials, kind, payload)
        self._require(report, what)
        self.say(f"{what}: {report.accepted} labels by {member.actor_id}")

    def consumer_scans(self, genuine: str, others: list[str]) -> None:
        self.wait_for(genuine, None)
        view = {}
        for _ in range(3):
            view = self.client.scan(genuine, channel="web", region=CONSUMER_REGION)
        for serial in others:
            self.client.scan(serial, channel="web", region=CONSUMER_REGION)
        self.say(f"consumer scans: 3 of {genuine} (verdict {view.get('verdict')}), 1 each of {len(others)} more, region {CONSUMER_REGION}")

    def recall_lot(self, gtin: str, lot: str) -> None:
        subject = gs1.lot_key(gtin, lot)
        if self.client.heads("lot", [subject]).get(subject) is not None:
            self.say(f"recall: lot {subject} is already recalled: skipped")
            return
        report = cmd.append_next(self.client, self.signers[REGULATOR.actor_id], "lot", [subject], "Recalled", cmd.recalled_payload("thermal runaway risk found in spot check"), new_chain_ok=True)
        self._require(report, "recall lot")
        self.say(f"recall: {REGULATOR.actor_id} recalled lot {subject}")

    def wait_for(self, serial: str, verdict: str | None) -> None:
        """Poll the verification view until it shows ``verdict`` (None: any known verdict)."""
        deadline = time.monotonic() + PROJECTION_WAIT_SECONDS
        seen = None
        while time.monotonic() < deadline:
            seen = self.client.label(serial).get("verdict")
            if (verdict is None and seen != "unknown") or seen == verdict:
                return
            time.sleep(0.25)
        self.say(f"warning: after {PROJECTION_WAIT_SECONDS:.0f}s {serial} reads {seen!r}, expected {verdict or 'a known label'} (is the projector running?)")

    def summary(self, r: dict) -> None:
        api = r["api"]
        keys = r["keys_dir"]
        lines = [
            "",
            "Demo done. Try:",
            f"  genuine      {api}/v1/labels/{r['genuine']}",
            f"  recalled     {api}/v1/labels/{r['recalled']}",
            f"  counterfeit  {api}/v1/labels/{r['counterfeit']}",
            "",
            "Consumer page (GS1 Digital Link; Chinese by default, add ?lang=en):",
            f"  genuine      {api}/01/{ACME_GTIN}/21/{r['genuine']}",
            f"  recalled     {api}/01/{ACME_GTIN}/21/{r['recalled']}",
            f"  counterfeit  {api}/01/{ACME_GTIN}/21/{r['counterfeit']}",
            f"  manual entry {api}/",
            "",
            f"  .venv/bin/traceledger verify {r['genuine']}",
            f"  .venv/bin/traceledger --json verify {r['counterfeit']}",
            "Full trail (actors, event ids, reports), signed by the label's producer or a regulator:",
            f"  .venv/bin/traceledger label trail {r['genuine']} --key {keys}/producer.key",
            f"  .venv/bin/traceledger label trail {r['counterfeit']} --key {keys}/regulator.key",
            f"  .venv/bin/traceledger ship --key {keys}/distributor.key --to {RETAILER.actor_id} --territory 4403 --channel offline_retail {r['at_distributor']}",
            f"  .venv/bin/traceledger scan --key {keys}/retailer.key --channel shelf --region {CONSUMER_REGION} {r['genuine']}",
            f"  .venv/bin/traceledger issue --key {keys}/producer.key --gtin {ACME_GTIN} --lot L2026C --product '{BATTERY}' --count 1000 --out labels-L2026C.csv",
            f"  .venv/bin/traceledger actor show {ACME.actor_id}",
            f"  .venv/bin/traceledger alerts summary --key {keys}/regulator.key     (alerts: signed by a regulator, or a producer for its own)",
            f"  .venv/bin/traceledger alerts chart --key {keys}/regulator.key --out alerts.svg",
            f"Labels issued this run: {r['issued']} (in {r['labels_csv']})",
        ]
        for line in lines:
            self.echo(line)

    @staticmethod
    def _require(report: cmd.Report, what: str) -> None:
        """Stop the demo at the first refusal, with its reason."""
        if report.ok:
            return
        first = report.refusals[0]
        raise Refused(first.get("code") or "refused", f"demo step '{what}': {first.get('subject')}: {first.get('detail')}", field=first.get("field"))
