"""Detection rules: pure functions over one label's detector state and one event.

:func:`evaluate` takes the label's state *before* the event (the lifecycle
fold the verification projector keeps), the detector's own memory of the
label (:class:`Watch`: recent scan places and distinct sessions), the event,
the signer's role and the thresholds, and returns the new :class:`Watch` and
the :class:`Finding` s the event gives rise to. No I/O: the detector
(:mod:`projections.alerts`) turns findings into alerts, one per incident.

Who counts: scans by gateways (consumers), retailers and distributors show
where an item is in the market. Scans by regulators are inspections (a
regulator checking a fake is how it gets flagged) and raise nothing; a
producer's own signed scan raises only a diversion (a brand's test purchase
outside the territory). Only gateway scans are consumer sessions.

Evidence is weighed, not believed (issue 15). A gateway scan is anonymous: its
``session`` is the server's per-label pseudonym of the client (one client, one
session on a label, whatever it sends), its ``region`` the place the server
derived (:mod:`ledger.places`), its coordinates the client's own claim, used
only inside that region. So:

* one client is one session: its 300 scans, or two scans a second apart
  claiming Beijing and Guangzhou, are one client in one place;
* impossible travel compares scans of *different* clients (or signed scans);
* an alert backed by anonymous scans of fewer than ``corroborating_clients``
  distinct clients is never above ``single_client_severity``: one client alone
  never raises a high-severity alert, however the thresholds rank its kind;
* every finding says what its evidence is (:attr:`Finding.evidence`: signed or
  anonymous, how many independent clients, whether the place is the server's).

What must not alert, and why it does not:

* a consumer scanning twice in a minute: one session, one place;
* a family scanning from two phones in one city: two sessions (under the
  per-product limit), places closer than ``min_travel_km``;
* a return to the distributor, a legal re-export: each has its own Shipped
  event, and the latest Shipped is what authorizes territory and channel;
* a buyer who scanned the item at home and later scans it while travelling:
  a session first seen inside the territory is the owner's, not a diverter's
  (a clone scanned far away comes from other sessions);
* a buyer's first use of the scratch-off PIN, a typo or two, or the buyer
  entering the PIN again from the phone that first used it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime

from ledger import places, regions
from ledger.events import Event
from ledger.lifecycle import LabelState
from projections.detection_config import DetectionConfig

MARKET_ROLES = ("gateway", "retailer", "distributor")
CONSUMER_ROLE = "gateway"
# event.v4 place sources of a gateway scan that place nothing for travel.
NUMBER_PLACE, NO_PLACE = places.FROM_NUMBER, places.NO_PLACE
PRODUCER_ROLE = "producer"
SEVERITY_RANK = {"low": 0, "medium": 1, "high": 2}


@dataclass(frozen=True)
class SeenScan:
    """A recent scan with a known place (kept for the impossible-travel rule)."""

    event_id: str
    at: float  # POSIX seconds
    lat: float
    lon: float
    radius_km: float
    region: str | None
    session: str | None = None  # whose scan (a gateway scan's client); None: a signed scan

    def place(self) -> regions.Place:
        return regions.Place(self.lat, self.lon, self.radius_km, self.region)


@dataclass(frozen=True)
class Watch:
    """What the detector remembers about one label, beyond its lifecycle state."""

    sessions: tuple[str, ...] = ()  # distinct consumer sessions, in first-seen order
    scans: tuple[SeenScan, ...] = ()  # the most recent scans with a place
    home: tuple[str, ...] = ()  # sessions that scanned it inside its territory (its buyers)
    wrong_pins: int = 0  # wrong scratch-off PINs entered on it
    pin_session: str | None = None  # the session that used its PIN first
    away: tuple[str, ...] = ()  # sessions that scanned it outside its territory (bounded)
    guessers: tuple[str, ...] = ()  # sessions that entered a wrong PIN on it (bounded)

    def as_json(self) -> dict:
        return {"sessions": list(self.sessions), "scans": [s.__dict__ for s in self.scans], "home": list(self.home),
                "wrong_pins": self.wrong_pins, "pin_session": self.pin_session, "away": list(self.away), "guessers": list(self.guessers)}

    @classmethod
    def from_json(cls, raw: dict | None) -> "Watch":
        if not raw:
            return cls()
        return cls(tuple(raw.get("sessions", ())), tuple(SeenScan(**s) for s in raw.get("scans", ())), tuple(raw.get("home", ())),
                   raw.get("wrong_pins", 0), raw.get("pin_session"), tuple(raw.get("away", ())), tuple(raw.get("guessers", ())))


@dataclass(frozen=True)
class Finding:
    """One piece of evidence for an alert; ``key`` names the incident it belongs to."""

    kind: str
    severity: str
    key: str
    serial: str | None
    event_ids: tuple[str, ...]
    occurred_at: datetime
    region: str | None = None
    lat: float | None = None
    lon: float | None = None
    producer: str | None = None
    gtin: str | None = None
    gateway: str | None = None
    detail: dict = field(default_factory=dict)
    # What the evidence is: source (signed | anonymous), signer_role, independent_clients
    # (distinct anonymous clients behind it), place (server | claim | none).
    evidence: dict = field(default_factory=dict)


def session_key(event: Event) -> str:
    """A scan's session; a scan without one counts once per city, channel and day.

    Without the fallback a copied code scanned anonymously would never add
    up; with it, one anonymous buyer re-scanning the same day counts once.
    """
    p = event.payload
    if p.get("session"):
        return p["session"]
    return f"anon:{regions.city(p.get('region')) or '?'}:{p.get('channel')}:{event.occurred_at.date().isoformat()}"


def evaluate(
    state: LabelState | None,
    watch: Watch,
    event: Event,
    role: str,
    cfg: DetectionConfig,
    *,
    lot_recalled: bool = False,
) -> tuple[Watch, list[Finding]]:
    """The findings ``event`` (signed by a ``role``) gives rise to, and the new watch.

    ``state`` is the label's lifecycle state before the event (None before
    it is issued); ``lot_recalled`` whether its lot has been recalled.
    """
    if state is None or event.subject_type != "label":
        return watch, []
    if role == PRODUCER_ROLE and event.kind == "Scanned":
        # The brand's own signed scan: a test purchase outside the territory is a diversion.
        return watch, [replace(f, evidence=_evidence(role, event, 0)) for f in _territory(state, event, cfg, "producer scan")]
    if role not in MARKET_ROLES:
        return watch, []
    if event.kind == "Scanned":
        return _scanned(state, watch, event, role, cfg, lot_recalled)
    if event.kind == "Received":
        return watch, [replace(f, evidence=_evidence(role, event, 0)) for f in _received(state, event, cfg)]
    return watch, []


def _finding(cfg: DetectionConfig, kind: str, state: LabelState, event: Event, event_ids=None, **extra) -> Finding:
    p = event.payload
    return Finding(
        kind=kind,
        severity=cfg.severity.get(kind, "medium"),
        key=f"{kind}:{state.serial}",
        serial=state.serial,
        event_ids=tuple(event_ids or (event.event_id,)),
        occurred_at=event.occurred_at,
        region=regions.normalize(p.get("region")),
        lat=p.get("lat"),
        lon=p.get("lon"),
        producer=state.producer,
        gtin=state.gtin,
        gateway=event.actor,
        detail=extra,
    )


def _territory(state: LabelState, event: Event, cfg: DetectionConfig, what: str) -> list[Finding]:
    region = event.payload.get("region")
    if state.territory is None or regions.covers(state.territory, region) is not False:
        return []
    return [_finding(cfg, "diversion_territory", state, event, territory=state.territory, seen_in=regions.normalize(region),
                     seen_in_name=regions.name(region), territory_name=regions.territory_name(state.territory), by=what)]


def _channel(state: LabelState, event: Event, cfg: DetectionConfig, observed: str | None, what: str) -> list[Finding]:
    if not observed or not state.channel or state.channel in cfg.any_channel or observed == state.channel:
        return []
    return [_finding(cfg, "diversion_channel", state, event, shipped_channel=state.channel, seen_channel=observed, by=what)]


def _received(state: LabelState, event: Event, cfg: DetectionConfig) -> list[Finding]:
    # A receipt is checked against the shipment it closes (state before it).
    return _territory(state, event, cfg, "receipt") + _channel(state, event, cfg, cfg.sales_channel_of_actor.get(event.actor), "receipt")


def _scanned(state: LabelState, watch: Watch, event: Event, role: str, cfg: DetectionConfig, lot_recalled: bool) -> tuple[Watch, list[Finding]]:
    p = event.payload
    limits = cfg.thresholds(state.gtin)
    out: list[Finding] = []
    if state.counterfeit:
        out.append(_finding(cfg, "counterfeit_scan", state, event))
    if state.recalled or lot_recalled:
        out.append(_finding(cfg, "recalled_scan", state, event, lot_recalled=lot_recalled))
    if state.status == "decommissioned":
        out.append(_finding(cfg, "clone_overscan", state, event, reason="scanned_after_decommissioning"))
    if role == CONSUMER_ROLE and state.status == "issued":
        out.append(_finding(cfg, "scan_before_ship", state, event, custodian=state.custodian))
    home, away = watch.home, watch.away
    inside = regions.covers(state.territory, p.get("region"))
    if role == CONSUMER_ROLE and p.get("session") and inside is False and p["session"] in home:
        pass  # its buyer, who scanned it at home first, has taken it travelling
    else:
        out += _territory(state, event, cfg, f"{role} scan")
        if role == CONSUMER_ROLE and inside is False:
            away = _add(away, session_key(event), 16)
    if role == CONSUMER_ROLE and p.get("session") and inside is True and p["session"] not in home:
        home = (home + (p["session"],))[-8:]
    observed = cfg.sales_channel_of_scan.get(p.get("channel")) or cfg.sales_channel_of_actor.get(event.actor)
    out += _channel(state, event, cfg, observed, f"{role} scan")

    pin_watch, pin_findings = _pin(state, watch, event, cfg, limits)
    out += pin_findings

    sessions = watch.sessions
    if role == CONSUMER_ROLE:
        key = session_key(event)
        if key not in sessions:
            sessions = sessions + (key,)
        if len(sessions) > limits.max_sessions:
            out.append(_finding(cfg, "clone_overscan", state, event, reason="too_many_sessions",
                                sessions=len(sessions), max_sessions=limits.max_sessions))
        # Only the count matters past the limit; keep a bounded list.
        sessions = sessions[: max(limits.max_sessions * 4, 64)]

    scans = watch.scans
    place = scan_place(p, role)
    who = session_key(event) if role == CONSUMER_ROLE else None
    if place is not None:
        at = event.occurred_at.timestamp()
        worst = _fastest(scans, place, at, limits.min_travel_km, who)
        if worst is not None and worst[0] > limits.max_speed_kmh:
            speed, km, hours, prev = worst
            out.append(_finding(cfg, "clone_impossible_travel", state, event, event_ids=(prev.event_id, event.event_id),
                                speed_kmh=round(speed, 1), min_distance_km=round(km, 1), hours=round(hours, 4),
                                previous_region=prev.region, max_speed_kmh=limits.max_speed_kmh))
        seen = SeenScan(event.event_id, at, place.lat, place.lon, place.radius_km, place.region, who)
        scans = (scans + (seen,))[-cfg.recent_scans:]
    new = replace(watch, sessions=sessions, scans=scans, home=home, wrong_pins=pin_watch.wrong_pins, pin_session=pin_watch.pin_session,
                  away=away, guessers=pin_watch.guessers)
    return new, [_weighed(f, new, event, role, cfg) for f in out]


def _add(seen: tuple[str, ...], who: str, keep: int) -> tuple[str, ...]:
    """``seen`` with ``who`` added once; only the count matters past ``keep``."""
    return seen if who in seen or len(seen) >= keep else seen + (who,)


def scan_place(p: dict, role: str) -> regions.Place | None:
    """Where a scan happened, as far as the detector believes it.

    A signed scan's place is its signer's word. A gateway scan's region is the
    place the server derived; its coordinates are the consumer's own claim,
    used only when they lie within that region (a claim with no server place,
    or far from it, is ignored for placing the scan). A gateway scan placed by
    a phone number (``place_source`` ``number``) has no place for travel: the
    number's block tells where it was allocated, not where the phone is.
    """
    if role == CONSUMER_ROLE and p.get("place_source") in (NUMBER_PLACE, NO_PLACE):
        return None  # a number's home city is not where the phone is; no place is no place
    place = regions.place_of(p.get("region"), p.get("lat"), p.get("lon"))
    if role != CONSUMER_ROLE or p.get("lat") is None or p.get("lon") is None:
        return place
    server = regions.centroid(p.get("region"))
    if server is None or regions.distance_km(server, place) > server.radius_km:
        return server
    return place


def _clients(f: Finding, watch: Watch) -> int:
    """How many distinct anonymous clients stand behind a gateway scan's finding."""
    if f.kind == "clone_impossible_travel":
        return 2  # two scans of different clients, by construction
    if f.kind == "diversion_territory":
        return len(watch.away)
    if f.kind == "pin_reuse":
        if f.detail.get("reason") == "wrong_pins":
            return len(watch.guessers)
        return 2 if watch.pin_session else 1
    return len(watch.sessions)


def _evidence(role: str, event: Event, clients: int) -> dict:
    if role != CONSUMER_ROLE:
        return {"source": "signed", "signer_role": role, "independent_clients": 0, "place": "signed" if event.payload.get("region") else "none"}
    out = {"source": "anonymous", "signer_role": role, "independent_clients": clients, "place": "server" if event.payload.get("region") else "none"}
    if event.payload.get("place_source"):  # event.v4: where the server's place came from
        out["place_source"] = event.payload["place_source"]
    return out


def _weighed(f: Finding, watch: Watch, event: Event, role: str, cfg: DetectionConfig) -> Finding:
    """The finding with its evidence described, and no more severe than its independent clients allow."""
    if role != CONSUMER_ROLE:
        return replace(f, evidence=_evidence(role, event, 0))
    clients = _clients(f, watch)
    severity = f.severity
    cap = cfg.single_client_severity
    if clients < cfg.corroborating_clients and SEVERITY_RANK.get(severity, 2) > SEVERITY_RANK.get(cap, 1):
        severity = cap
    if event.payload.get("place_source") == NUMBER_PLACE and f.kind == "diversion_territory":
        severity = min(severity, cfg.number_place_severity, key=lambda s: SEVERITY_RANK.get(s, 2))
    return replace(f, severity=severity, evidence=_evidence(role, event, clients))


def _pin(state: LabelState, watch: Watch, event: Event, cfg: DetectionConfig, limits) -> tuple[Watch, list[Finding]]:
    """pin_reuse: the PIN verified again after its first use, or too many wrong PINs.

    A PIN is printed under a scratch-off layer of one item: once used, a
    second use means its code and PIN were copied (or the item is a refilled
    original), unless it is the same session that used it first (the buyer
    checking again).
    """
    result, session = event.payload.get("pin_result"), event.payload.get("session")
    if result == "first_use":
        return replace(watch, pin_session=watch.pin_session or session), []
    if result == "reused":
        if session and session == watch.pin_session:
            return watch, []
        return watch, [_finding(cfg, "pin_reuse", state, event, reason="pin_reused", first_use_session=watch.pin_session is not None)]
    if result == "wrong":
        wrong = watch.wrong_pins + 1
        found = []
        if wrong >= limits.max_wrong_pins:
            found.append(_finding(cfg, "pin_reuse", state, event, reason="wrong_pins", wrong_pins=wrong, max_wrong_pins=limits.max_wrong_pins))
        return replace(watch, wrong_pins=wrong, guessers=_add(watch.guessers, session_key(event), 16)), found
    return watch, []


def _fastest(scans: tuple[SeenScan, ...], place: regions.Place, at: float, min_km: float, who: str | None):
    """(speed km/h, least distance, hours, previous scan) of the fastest jump, or None.

    ``who``: the client of a gateway scan. Its own earlier scans are never compared
    with it: one client cannot be a clone of itself (a client that seems to jump is a
    VPN, a roaming phone, or someone making places up), so travel needs two clients
    (or a signed scan).
    """
    worst = None
    for prev in scans:
        if who is not None and prev.session == who:
            continue
        km = regions.min_distance_km(prev.place(), place)
        if km < min_km:
            continue
        # Scans can arrive out of time order (back-dated, queued offline): use |Δt|,
        # and at least a second so simultaneous scans far apart are infinitely fast.
        hours = max(abs(at - prev.at), 1.0) / 3600.0
        speed = km / hours
        if worst is None or speed > worst[0]:
            worst = (speed, km, hours, prev)
    return worst
