"""Ground truth for the detector: realistic label traffic with injected incidents.

``traceledger simulate --seed S --labels N --out DIR`` drives the real API:
producers issue labels, ship them to provincial distributors (territory = the
province), who ship on to city shops (territory = the city, channel
``offline_retail``); consumers scan with plausible places (city centroid plus
a few km, sometimes only a province from an SMS gateway) and times. Every
event is signed client-side, by the actor who acts, with a time on a
simulated 30-day timeline ending now (back-dated scans are signed by the
simulation's own gateway actor). Some consumer scans go through
``POST /v1/labels/{serial}/scans`` in real time, as do the scans of made-up codes.

Each label follows one *behaviour*: ordinary ones, legitimate ones that must
not alert (double scan, family, return to the distributor, legal re-export,
a traveller scanning at home then far away, a buyer using the scratch-off PIN
and checking it again), and incidents. Each incident is injected so that it
fits the definition of the kinds it is recorded under (a far clone is recorded
as impossible travel only when the scans are further apart than the detector's
top speed allows). What was injected is written to ``DIR/truth.jsonl``;
:func:`score` compares it with the alerts.

Same seed, same behaviours, places and times relative to the run's start
(serials and keys are fresh: they come from the OS CSPRNG on purpose).
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Iterable

from ledger import gs1, places, regions
from ledger.config import Settings
from ledger.errors import Refused
from ledger.events import GENESIS_HASH, SignedEvent, new_event
from ledger.keys import KeyPair
from projections.detection_config import Thresholds
from traceledger import commands as cmd
from traceledger.client import Client
from traceledger.demo import ACME, ACME_GTIN, BATTERY, CABLE, CABLE_GTIN, REGISTRAR, REGULATOR, ZHEJIANG, Scenario

Echo = Callable[[str], None]

# province -> (distributor's city, shop cities)
NETWORK = {
    "44": ("4401", ("4403", "4401", "4406", "4419")),
    "31": ("3101", ("3101",)),
    "11": ("1101", ("1101",)),
    "51": ("5101", ("5101",)),
    "33": ("3301", ("3301", "3302", "3303")),
    "42": ("4201", ("4201",)),
    "32": ("3201", ("3201", "3205")),
}
CITIES = sorted(c for c in regions.CENTROIDS if len(c) == 4)

# behaviour -> (weight per 100 labels, alert kinds it must raise)
BEHAVIOURS: dict[str, tuple[float, tuple[str, ...]]] = {
    "at_factory": (2.5, ()),
    "at_distributor": (24.0, ()),
    "on_shelf": (28.0, ()),
    "scanned_once": (24.0, ()),
    "double_scan": (4.0, ()),       # the same phone twice in a minute, through the API
    "family": (3.0, ()),            # two phones, one city
    "traveller": (1.0, ()),         # the buyer scans at home, then days later in another province
    "returned": (2.0, ()),          # back to the distributor, maybe on to another shop
    "reexported": (1.5, ()),        # legally re-exported to Hong Kong with its own Shipped event
    "diverted_territory": (2.0, ("diversion_territory",)),
    "diverted_channel": (1.2, ("diversion_channel",)),
    # A code copied and scanned in a far city: faster than any flight after the
    # first scan (what clone_impossible_travel means), or hours later, when a
    # flight could explain it and only the territory rule can see it.
    "cloned_far": (0.6, ("clone_impossible_travel", "diversion_territory")),
    "cloned_far_slow": (0.4, ("diversion_territory",)),
    "cloned_overscan": (1.0, ("clone_overscan",)),
    "scanned_after_decommission": (0.6, ("clone_overscan",)),
    "recalled_seen": (0.8, ("recalled_scan",)),
    "counterfeit_seen": (0.8, ("counterfeit_scan",)),
    "scanned_before_ship": (0.6, ("scan_before_ship",)),
    "pin_checked": (3.0, ()),       # the buyer scratches and uses the PIN, maybe checks it again later
    "pin_reused": (0.5, ("pin_reuse",)),       # a copied code and PIN used again by someone else
    "pin_guessed": (0.4, ("pin_reuse",)),      # someone trying PINs on one code
}
LEGIT_LOOKALIKES = ("double_scan", "family", "traveller", "returned", "reexported", "pin_checked")
LEGIT_AFTER_SALE = ("scanned_once", "double_scan", "family", "traveller", "returned", "pin_checked")
# The defaults the detector runs with: an incident of a kind is injected to fit the kind's definition.
MAX_SPEED_KMH = Thresholds().max_speed_kmh
MAX_WRONG_PINS = Thresholds().max_wrong_pins
TYPO_CHANNEL = "sms"
COUNTERFEIT_CHANNEL = "web"
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)


@dataclass
class Actors:
    """Signers of the simulation, by actor id."""

    signers: dict[str, cmd.Signer] = field(default_factory=dict)
    distributor: dict[str, str] = field(default_factory=dict)  # province -> actor
    shop: dict[str, str] = field(default_factory=dict)  # city -> actor
    exporter: str = ""
    gateway: str = ""


class Chains:
    """Signs each label's next event on top of its head (the simulation is its only writer)."""

    def __init__(self):
        self.heads: dict[str, tuple[int, bytes]] = {}

    def sign(self, signer: cmd.Signer, serial: str, kind: str, payload: dict, at: datetime) -> SignedEvent:
        seq, head = self.heads.get(serial, (-1, GENESIS_HASH))
        e = new_event(subject_type="label", subject=serial, kind=kind, payload=payload, actor=signer.actor,
                      key_id=signer.key.key_id, seq=seq + 1, prev_hash=head, occurred_at=at)
        signed = e.sign(signer.key)
        self.heads[serial] = (seq + 1, signed.hash)
        return signed


@dataclass(frozen=True)
class Sale:
    """Where a label went on its way to a shop, and when it was received and sold there."""

    producer: str
    province: str
    dist: str
    dist_city: str
    shop_cities: tuple[str, ...]
    city: str
    shop: str
    received: datetime
    sold: datetime


class LabelTrail:
    """One label's events, signed in order by the simulation's actors (consumer scans by its gateway)."""

    def __init__(self, sim: "Simulation", serial: str):
        self.sim, self.serial = sim, serial
        self.events: list[SignedEvent] = []

    def sign(self, actor_id: str, kind: str, payload: dict, at: datetime) -> None:
        self.events.append(self.sim.chains.sign(self.sim.actors.signers[actor_id], self.serial, kind, payload, at))

    def scan(self, city_or_place, when: datetime, session: str | None = None, channel: str | None = None, pin_result: str | None = None) -> None:
        """A consumer scan in a city (a place is drawn) or at a given place."""
        sim = self.sim
        p = sim.place(city_or_place) if isinstance(city_or_place, str) else dict(city_or_place)
        if channel:
            p["channel"] = channel
        payload = cmd.scanned_payload(p["channel"], region=p["region"], lat=p["lat"], lon=p["lon"], session=session or sim.session(),
                                      pin_result=pin_result)
        # Never past the simulation's "now": the ledger refuses future times.
        self.sign(sim.actors.gateway, "Scanned", payload, min(when, sim.now))


def _city_region(city: str) -> str:
    return city + "00"  # the 6-digit GB/T 2260 form of a city


class Simulation:
    def __init__(self, settings: Settings, client: Client, seed: int, labels: int, out: Path, demo_dir: Path, echo: Echo):
        self.settings, self.client, self.seed, self.labels, self.out, self.echo = settings, client, seed, labels, out, echo
        self.demo_dir = demo_dir
        self.rng = random.Random(seed)
        self.chains = Chains()
        self.actors = Actors()
        self.truth: list[dict] = []
        self.api_scans: list[tuple[str, dict]] = []  # (serial, body) posted in real time at the end
        self.now = datetime.now(timezone.utc) - timedelta(minutes=2)
        self.start = self.now - timedelta(days=30)
        self.counts: dict[str, int] = {}
        self.events = 0
        self.t0 = time.monotonic()

    def say(self, line: str) -> None:
        self.echo(f"[simulate {time.monotonic() - self.t0:6.1f}s] {line}")

    # ------------------------------------------------------------ set-up

    def set_up(self) -> None:
        """Demo members (reusing the demo's keys), then this run's distributors, shops, exporter, gateway."""
        scenario = Scenario(self.settings, self.demo_dir, 10, lambda line: None, self.client)
        scenario.load_keys()
        scenario.init_registrar()
        scenario.register_members()
        self.actors.signers.update(scenario.signers)
        registrar = scenario.signers[REGISTRAR.actor_id]
        keys_dir = self.out / "keys"
        keys_dir.mkdir(parents=True, exist_ok=True)
        wanted: list[tuple[str, str, str]] = []
        tag = f"sim{self.seed}"
        for province, (_, cities) in NETWORK.items():
            self.actors.distributor[province] = f"{tag}-dist-{province}"
            wanted.append((self.actors.distributor[province], "distributor", f"Distributor {regions.name(province)}"))
            for c in cities:
                self.actors.shop[c] = f"{tag}-shop-{c}"
                wanted.append((self.actors.shop[c], "retailer", f"Shop {regions.name(c)}"))
        self.actors.exporter = f"{tag}-hk-export"
        self.actors.gateway = f"{tag}-gateway"
        wanted += [(self.actors.exporter, "distributor", "Hong Kong exporter"), (self.actors.gateway, "gateway", "Simulated scan gateway")]
        events = []
        for actor_id, role, name in wanted:
            path = keys_dir / f"{actor_id}.key"
            if not path.exists():
                KeyPair.generate(actor_id).save(path)
            signer = cmd.Signer(KeyPair.load(path), actor_id)
            self.actors.signers[actor_id] = signer
            found = self.client.actor(actor_id)
            if found is None:
                events.append(registrar.sign("actor", actor_id, "ActorRegistered", cmd.actor_registered_payload(role, name, signer.key.public_key)))
            elif found["key_id"] != signer.key.key_id:
                raise Refused("key_mismatch", f"actor {actor_id} is registered with another key than {path}; use another --seed or --out", field="seed")
        if events:
            report = cmd.submit(self.client, events)
            if not report.ok:
                raise Refused("refused", f"registering simulation actors: {report.refusals[0]}")
        self.say(f"actors ready: {len(wanted)} simulation actors ({len(events)} newly registered)")

    # ------------------------------------------------------------ places and times

    def place(self, city: str, *, coarse_ok: bool = True) -> dict:
        """A consumer scan's place: usually city + coordinates; SMS scans know only the province."""
        r = self.rng.random()
        if coarse_ok and r < 0.12:
            return {"channel": "sms", "region": city[:2] + "0000", "lat": None, "lon": None}
        c = regions.centroid(city)
        if r < 0.25:
            return {"channel": "web", "region": _city_region(city), "lat": None, "lon": None}
        return {"channel": self.rng.choice(("web", "app")), "region": _city_region(city),
                "lat": round(c.lat + self.rng.uniform(-0.1, 0.1), 2), "lon": round(c.lon + self.rng.uniform(-0.1, 0.1), 2)}

    def session(self) -> str:
        return "%016x" % self.rng.getrandbits(64)

    def after(self, t: datetime, low: timedelta, high: timedelta) -> datetime:
        return min(t + low + (high - low) * self.rng.random(), self.now)

    # ------------------------------------------------------------ one label
    #
    # The random draws happen in a fixed order per behaviour: the same seed gives
    # the same behaviours, places and times.

    def label(self, serial: str, behaviour: str, product: tuple) -> list[SignedEvent]:
        """A label's signed events: issued, shipped to a distributor and on to a shop, then what ``behaviour`` does."""
        producer, payload = product
        trail = LabelTrail(self, serial)
        t = self.start + 4 * DAY * self.rng.random()
        trail.sign(producer, "Issued", payload, t)
        if behaviour in ("at_factory", "scanned_before_ship"):
            if behaviour == "scanned_before_ship":
                trail.scan(self.rng.choice(CITIES), self.after(t, DAY, 10 * DAY))
            return trail.events
        province = self.rng.choice(list(NETWORK))
        dist_city, shop_cities = NETWORK[province]
        dist = self.actors.distributor[province]
        t = self.after(t, 2 * HOUR, 2 * DAY)
        trail.sign(producer, "Shipped", cmd.shipped_payload(dist, province, "offline_retail", region="440300"), t)
        t = self.after(t, 6 * HOUR, 3 * DAY)
        trail.sign(dist, "Received", cmd.received_payload(region=_city_region(dist_city)), t)
        if behaviour == "at_distributor":
            return trail.events
        if behaviour == "reexported":
            self._reexport(trail, dist, t)
            return trail.events
        city = self.rng.choice(shop_cities)
        shop = self.actors.shop[city]
        t = self.after(t, 2 * HOUR, 4 * DAY)
        trail.sign(dist, "Shipped", cmd.shipped_payload(shop, city, "offline_retail", region=_city_region(dist_city)), t)
        t = self.after(t, 4 * HOUR, 2 * DAY)
        trail.sign(shop, "Received", cmd.received_payload(region=_city_region(city)), t)
        sale = Sale(producer, province, dist, dist_city, shop_cities, city, shop, t, self.after(t, HOUR, 10 * DAY))
        if behaviour in LEGIT_AFTER_SALE:
            self._legit_after_sale(trail, behaviour, sale)
        elif behaviour != "on_shelf":
            self._incident_after_sale(trail, behaviour, sale)
        return trail.events

    def _reexport(self, trail: "LabelTrail", dist: str, t: datetime) -> None:
        """Legally re-exported to Hong Kong with its own Shipped event, then scanned there."""
        t = self.after(t, 2 * HOUR, 3 * DAY)
        trail.sign(dist, "Shipped", cmd.shipped_payload(self.actors.exporter, "81", "export"), t)
        t = self.after(t, 6 * HOUR, 2 * DAY)
        trail.sign(self.actors.exporter, "Received", cmd.received_payload(region="810000"), t)
        trail.scan({"channel": "web", "region": "810000", "lat": 22.3, "lon": 114.17}, self.after(t, DAY, 8 * DAY))

    def _legit_after_sale(self, trail: "LabelTrail", behaviour: str, sale: "Sale") -> None:
        """What buyers and shops do that must not alert."""
        city, sold = sale.city, sale.sold
        if behaviour == "scanned_once":
            trail.scan(city, sold)
        elif behaviour == "double_scan":
            p = self.place(city, coarse_ok=False)
            self.api_scans += [(trail.serial, {**p, "session": (sess := self.session())}), (trail.serial, {**p, "session": sess})]
        elif behaviour == "family":
            trail.scan(city, sold, channel="app")
            trail.scan(city, sold + timedelta(minutes=self.rng.uniform(1, 600)), channel="app")
        elif behaviour == "traveller":
            me = self.session()
            trail.scan(self.place(city, coarse_ok=False), sold, session=me)
            far = self.rng.choice([c for c in CITIES if c[:2] != city[:2]])
            trail.scan(self.place(far, coarse_ok=False), self.after(sold, DAY, 5 * DAY), session=me)
        elif behaviour == "returned":
            self._returned(trail, sale)
        elif behaviour == "pin_checked":
            me = self.session()
            trail.scan(self.place(city, coarse_ok=False), sold, session=me, pin_result="first_use")
            if self.rng.random() < 0.3:  # checks again later, from the same phone
                trail.scan(self.place(city, coarse_ok=False), self.after(sold, HOUR, 5 * DAY), session=me, pin_result="reused")

    def _returned(self, trail: "LabelTrail", sale: "Sale") -> None:
        """Back to the distributor; half the time on to another shop, where it sells."""
        t = self.after(sale.received, DAY, 5 * DAY)
        trail.sign(sale.shop, "Shipped", cmd.shipped_payload(sale.dist, sale.province, "offline_retail", region=_city_region(sale.city)), t)
        t = self.after(t, 4 * HOUR, 2 * DAY)
        trail.sign(sale.dist, "Received", cmd.received_payload(region=_city_region(sale.dist_city)), t)
        if self.rng.random() < 0.5:
            other = self.rng.choice(sale.shop_cities)
            t = self.after(t, 2 * HOUR, 2 * DAY)
            trail.sign(sale.dist, "Shipped", cmd.shipped_payload(self.actors.shop[other], other, "offline_retail"), t)
            t = self.after(t, 4 * HOUR, DAY)
            trail.sign(self.actors.shop[other], "Received", cmd.received_payload(region=_city_region(other)), t)
            trail.scan(other, self.after(t, HOUR, 3 * DAY))

    def _incident_after_sale(self, trail: "LabelTrail", behaviour: str, sale: "Sale") -> None:
        """An injected incident, fitting the definition of the alert kinds it is recorded under."""
        city, sold, t = sale.city, sale.sold, sale.received
        if behaviour == "diverted_territory":
            elsewhere = [c for c in CITIES if c != city and (c[:2] != city[:2] or self.rng.random() < 0.5)]
            trail.scan(self.rng.choice(elsewhere), sold)
        elif behaviour == "diverted_channel":
            trail.scan(self.place(city, coarse_ok=False), sold, channel="marketplace")
        elif behaviour in ("cloned_far", "cloned_far_slow"):
            self._cloned_far(trail, behaviour == "cloned_far", city, sold)
        elif behaviour == "pin_reused":
            trail.scan(self.place(city, coarse_ok=False), sold, pin_result="first_use")
            trail.scan(self.place(city, coarse_ok=False), self.after(sold, HOUR, 10 * DAY), pin_result="reused")
        elif behaviour == "pin_guessed":
            guesser, t = self.session(), sold
            for _ in range(self.rng.randint(MAX_WRONG_PINS, MAX_WRONG_PINS + 2)):
                t = t + timedelta(minutes=self.rng.uniform(1, 30))
                trail.scan(self.place(city, coarse_ok=False), t, session=guesser, pin_result="wrong")
        elif behaviour == "cloned_overscan":
            for i in range(self.rng.randint(7, 14)):
                trail.scan(self.place(city, coarse_ok=False), sold + i * timedelta(hours=self.rng.uniform(2, 30)))
        elif behaviour == "scanned_after_decommission":
            trail.sign(sale.shop, "Decommissioned", cmd.decommissioned_payload("item scrapped"), self.after(t, HOUR, DAY))
            trail.scan(city, self.after(sold, DAY, 3 * DAY))
        elif behaviour == "recalled_seen":
            trail.sign(sale.producer, "Recalled", cmd.recalled_payload("cells overheat"), self.after(t, HOUR, DAY))
            trail.scan(city, self.after(sold, DAY, 3 * DAY))
        elif behaviour == "counterfeit_seen":
            trail.sign(REGULATOR.actor_id, "FlaggedCounterfeit", cmd.flagged_payload("copy seized in market", region=_city_region(city)), self.after(t, HOUR, DAY))
            trail.scan(city, self.after(sold, DAY, 3 * DAY))

    def _cloned_far(self, trail: "LabelTrail", too_fast: bool, city: str, sold: datetime) -> None:
        """A scan at home, then one in a far city: faster than any journey (``too_fast``) or slow enough for a flight."""
        home = self.place(city, coarse_ok=False)
        trail.scan(home, sold)
        c0 = regions.centroid(city)
        far = self.rng.choice([c for c in CITIES if regions.distance_km(c0, regions.centroid(c)) > 800])
        there = self.place(far, coarse_ok=False)
        # The least distance between the two places (each place's uncertainty taken off), the speed rule's own measure.
        km = regions.min_distance_km(regions.place_of(home["region"], home["lat"], home["lon"]),
                                     regions.place_of(there["region"], there["lat"], there["lon"]))
        if too_fast:  # 1.25-4x faster than the fastest plausible journey
            gap = timedelta(hours=km / (MAX_SPEED_KMH * self.rng.uniform(1.25, 4.0)))
        else:  # at least 1.5x slower: a flight could do it
            gap = max(timedelta(hours=km * 1.5 / MAX_SPEED_KMH), timedelta(hours=self.rng.uniform(2, 12)))
        trail.scan(there, sold + gap)

    # ------------------------------------------------------------ run

    def run(self, chunk: int = 2000) -> dict:
        self.client.health()
        self.set_up()
        self.out.mkdir(parents=True, exist_ok=True)
        names = list(BEHAVIOURS)
        weights = [BEHAVIOURS[b][0] for b in names]
        products = [
            (ACME.actor_id, cmd.issued_payload(ACME_GTIN, f"S{self.seed}", BATTERY, region="440300")),
            (ZHEJIANG.actor_id, cmd.issued_payload(CABLE_GTIN, f"S{self.seed}", CABLE, region="330100")),
        ]
        with open(self.out / "truth.jsonl", "w") as truth:
            truth.write(json.dumps({"meta": {"seed": self.seed, "labels": self.labels, "start": self.start.isoformat(), "now": self.now.isoformat(),
                                             "behaviours": {b: {"weight": w, "kinds": list(k)} for b, (w, k) in BEHAVIOURS.items()}}}) + "\n")
            done = 0
            while done < self.labels:
                n = min(chunk, self.labels - done)
                events = []
                for _ in range(n):
                    serial = gs1.new_serial()
                    behaviour = self.rng.choices(names, weights)[0]
                    self.counts[behaviour] = self.counts.get(behaviour, 0) + 1
                    events += self.label(serial, behaviour, products[self.rng.random() < 0.2])
                    kinds = BEHAVIOURS[behaviour][1]
                    if kinds or behaviour in LEGIT_LOOKALIKES:
                        truth.write(json.dumps({"serial": serial, "behaviour": behaviour, "kinds": list(kinds)}) + "\n")
                self._post(events)
                done += n
                self.say(f"{done}/{self.labels} labels, {self.events} events")
            for line in self._unknown_codes():
                truth.write(json.dumps(line) + "\n")
        self._post_api_scans()
        result = {"seed": self.seed, "labels": self.labels, "events": self.events, "api_scans": len(self.api_scans),
                  "behaviours": self.counts, "truth": str(self.out / "truth.jsonl"), "seconds": round(time.monotonic() - self.t0, 1)}
        (self.out / "run.json").write_text(json.dumps(result, indent=2))
        return result

    def _post(self, events: list[SignedEvent]) -> None:
        report = cmd.submit(self.client, events)
        if not report.ok:
            first = report.refusals[0]
            raise Refused(first.get("code") or "refused", f"simulation event refused: {first.get('subject')}: {first.get('detail')}", field=first.get("field"))
        self.events += report.accepted

    def _unknown_codes(self) -> Iterable[dict]:
        """Counterfeit batches of made-up codes (one cluster each) and lone mistyped codes."""
        clusters = max(1, self.labels // 5000)
        cities = self.rng.sample(CITIES, min(clusters, len(CITIES)))
        for city in cities:
            serials = [gs1.new_serial() for _ in range(self.rng.randint(4, 12))]
            for serial in serials + self.rng.sample(serials, len(serials) // 3):
                self.api_scans.append((serial, {**self.place(city, coarse_ok=False), "channel": COUNTERFEIT_CHANNEL, "session": self.session()}))
            yield {"behaviour": "made_up_codes", "kinds": ["unknown_code"], "key": f"unknown_code:{COUNTERFEIT_CHANNEL}:{city}", "serials": serials}
        typos = min(max(1, self.labels // 5000), 2 * len(CITIES))
        for i in range(typos):
            city, serial = CITIES[i % len(CITIES)], gs1.new_serial()
            self.api_scans.append((serial, {"channel": TYPO_CHANNEL, "region": _city_region(city), "lat": None, "lon": None, "session": None}))
            yield {"behaviour": "mistyped_code", "kinds": [], "key": f"unknown_code:{TYPO_CHANNEL}:{city}", "serials": [serial]}

    def _post_api_scans(self) -> None:
        for serial, body in self.api_scans:
            # Each simulated consumer is its own client (per-client limits and counts): an address
            # per session, sent as X-Forwarded-For through the API's trusted loopback.
            self.client.scan(serial, forwarded_for=consumer_address(body.get("session") or serial, body.get("region")), **body)
        self.say(f"{len(self.api_scans)} consumer scans through POST /v1/labels/{{serial}}/scans")


def consumer_address(who: str, region: str | None = None) -> str:
    """A stable made-up address standing for one simulated consumer, in ``region`` as the local
    stack's address table places it (the API places scans by address, not by what they claim)."""
    digest = hashlib.sha256(who.encode()).digest()
    return places.local_address(region, int.from_bytes(digest[:2], "big"))


def simulate(settings: Settings, *, seed: int, labels: int, out: str | Path, demo_dir: str | Path = ".demo",
             client: Client | None = None, echo: Echo = lambda line: print(line, flush=True)) -> dict:
    """Run the simulation against ``settings.api_url``; ground truth in ``out/truth.jsonl``."""
    owned = client is None
    client = client or Client(settings=settings)
    try:
        return Simulation(settings, client, seed, labels, Path(out), Path(demo_dir), echo).run()
    finally:
        if owned:
            client.close()


# ------------------------------------------------------------------ scoring


def read_truth(path: str | Path) -> tuple[dict, list[dict]]:
    """(meta, entries) of a truth.jsonl file."""
    meta, entries = {}, []
    with open(path) as fh:
        for line in fh:
            item = json.loads(line)
            if "meta" in item:
                meta = item["meta"]
            else:
                entries.append(item)
    return meta, entries


def score(truth: list[dict], alerts: list[dict]) -> dict:
    """Precision and recall per alert kind, and alerts raised on legitimate behaviour.

    An alert is identified by (kind, serial), or (kind, key) for unknown-code
    clusters; a ground-truth entry expects each of its ``kinds``.
    """
    expected: set[tuple[str, str]] = set()
    behaviour_of: dict[str, str] = {}
    for t in truth:
        ident = t.get("serial") or t.get("key")
        behaviour_of[ident] = t["behaviour"]
        expected.update((k, ident) for k in t["kinds"])
    raised: set[tuple[str, str]] = set()
    false_alarms: dict[str, dict[str, int]] = {}
    for a in alerts:
        ident = a["serial"] or a["dedupe_key"]
        raised.add((a["kind"], ident))
        if (a["kind"], ident) not in expected:
            b = behaviour_of.get(ident, "ordinary")
            false_alarms.setdefault(a["kind"], {}).setdefault(b, 0)
            false_alarms[a["kind"]][b] += 1
    kinds = sorted({k for k, _ in expected} | {k for k, _ in raised})
    out = {}
    for kind in kinds:
        exp = {i for k, i in expected if k == kind}
        got = {i for k, i in raised if k == kind}
        tp = len(exp & got)
        out[kind] = {
            "expected": len(exp), "alerts": len(got), "true_positives": tp,
            "precision": round(tp / len(got), 4) if got else None,
            "recall": round(tp / len(exp), 4) if exp else None,
            "false_alarms_by_behaviour": false_alarms.get(kind, {}),
        }
    return out
