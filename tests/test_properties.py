"""Property-based tests of the domain rules (hypothesis).

Random command sequences, by any actor, with right and wrong chain links, go
against the pure rules (``ledger/lifecycle.py``) and against the real
``ledger.service.Ledger`` on a fresh database. Whatever the sequence:

* no chain forks: accepted events have seq 0, 1, 2, ... each linked to the
  hash of the one before, and two events offered for one position never both
  get in;
* no illegal state: statuses, custody and the one-way flags stay consistent;
* verification never answers ``genuine`` for a recalled or flagged label (or a
  label of a recalled lot): checked on the pure verdict and, once at the end,
  on the real read model built by the relay and the projector.

The oracle for "may this event be appended, and what does it change" is
:class:`Model`, a transition table written here from README's event table
("who may sign") and the label's life as the brief tells it (issued, shipped
to a consignee, received, ..., decommissioned), not imported from
``ledger/lifecycle.py``: using the code under test as its own oracle would
agree with any bug in it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import psycopg
from hypothesis import HealthCheck, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st
from psycopg.rows import dict_row

from ledger import gs1
from ledger.errors import Refused
from ledger.lifecycle import LabelState, LotState, authorize, fold, signer_of
from ledger.service import Ledger
from projections.verdict import verdict
from projections.verification import read_view
from tests.helpers import Cast, gtin, issued_payload, scanned_payload, shipped_payload
from tests.pipeline import project_all, relay_all

ACTORS = [a for a in Cast.ROLES if a != "registrar"] + ["registrar"]
LABEL_KINDS = ["Shipped", "Received", "Scanned", "FlaggedCounterfeit", "Recalled", "Decommissioned", "ReportedFake"]
STATUSES = {"issued", "in_transit", "received", "decommissioned"}


def payload(kind: str, consignee: str) -> dict:
    return {
        "Shipped": lambda: shipped_payload(consignee),
        "Received": lambda: {"region": None},
        "Scanned": lambda: scanned_payload(),
        "FlaggedCounterfeit": lambda: {"reason": "seized copy", "region": None},
        "Recalled": lambda: {"reason": "cells overheat"},
        "Decommissioned": lambda: {"reason": "used up"},
        "ReportedFake": lambda: {"channel": "web", "region": None, "reason": "looks wrong", "session": None},
    }[kind]()


# ------------------------------------------------------------ the oracle: a transition table from the brief

# README, "who may sign", by role where the table names roles.
SIGNING_ROLES = {
    "Scanned": {"gateway", "retailer", "distributor", "regulator", "producer"},
    "FlaggedCounterfeit": {"regulator"},
    "ReportedFake": {"gateway", "regulator"},
}
# Who can be shipped to: the supply chain's members (the brief's users who receive goods).
CONSIGNEE_ROLES = {"producer", "distributor", "retailer"}


@dataclass(frozen=True)
class ModelLabel:
    """What the brief says a label is: where it is in its life, who holds it, its one-way flags."""

    producer: str
    status: str = "issued"  # issued -> in_transit -> received -> in_transit ... ; decommissioned ends it
    custodian: str = ""
    consignee: str | None = None
    recalled: bool = False
    counterfeit: bool = False


class Model:
    """The transition table: ``allows`` (may ``signer`` append ``kind`` now?) and ``apply``."""

    def __init__(self, roles: dict[str, str]):
        self.roles = roles

    def allows(self, label: ModelLabel, kind: str, signer: str, consignee: str | None = None) -> bool:
        role = self.roles.get(signer)
        if kind in SIGNING_ROLES:
            return role in SIGNING_ROLES[kind] and not (kind == "FlaggedCounterfeit" and label.counterfeit)
        if kind == "Shipped":  # the current custodian, of a label at rest and not a known fake, to a member
            return (signer == label.custodian and label.status in ("issued", "received") and not label.counterfeit
                    and self.roles.get(consignee) in CONSIGNEE_ROLES)
        if kind == "Received":  # the consignee, of a label on its way to it
            return label.status == "in_transit" and signer == label.consignee
        if kind == "Recalled":  # a regulator, or the label's producer; once
            return (role == "regulator" or signer == label.producer) and not label.recalled
        if kind == "Decommissioned":  # the custodian or the producer; once
            return signer in (label.custodian, label.producer) and label.status != "decommissioned"
        raise AssertionError(f"no rule for {kind}")

    @staticmethod
    def apply(label: ModelLabel, kind: str, consignee: str | None = None) -> ModelLabel:
        if kind == "Shipped":
            return dataclasses.replace(label, status="in_transit", consignee=consignee)
        if kind == "Received":
            return dataclasses.replace(label, status="received", custodian=label.consignee, consignee=None)
        if kind == "Recalled":
            return dataclasses.replace(label, recalled=True)
        if kind == "FlaggedCounterfeit":
            return dataclasses.replace(label, counterfeit=True)
        if kind == "Decommissioned":  # out of circulation: no longer on its way to anyone
            return dataclasses.replace(label, status="decommissioned", consignee=None)
        return label  # Scanned, ReportedFake: evidence, no change of state

    def allows_lot_recall(self, signer: str, already: bool) -> bool:
        """A regulator, or a producer whose company prefix the lot's GTIN is under (acme's); once."""
        return (self.roles.get(signer) == "regulator" or signer == "acme") and not already


MODEL = Model({actor: role for actor, (role, _) in Cast.ROLES.items()})


def links(c: "Command") -> bool:
    """An event on top of the head it names: the next seq and the head's hash (invariant 1)."""
    return c.link == "ok"


def model_of(state: LabelState) -> tuple:
    """The fields the model tracks, read off the code's state, to compare the two."""
    return (state.status, state.custodian, state.consignee, state.recalled, state.counterfeit)


def expected_of(label: ModelLabel) -> tuple:
    return (label.status, label.custodian, label.consignee, label.recalled, label.counterfeit)


@dataclass(frozen=True)
class Command:
    """One attempted event on a label (or, for ``LotRecalled``, its lot)."""

    kind: str
    signer: str
    consignee: str
    link: str  # ok | stale | gap | bad_prev: how the event points at the chain head
    rival: str | None  # with the real ledger: a second event offered for the same position


commands = st.lists(
    st.builds(
        Command,
        kind=st.sampled_from(LABEL_KINDS + ["LotRecalled"]),
        signer=st.sampled_from(ACTORS),
        consignee=st.sampled_from(ACTORS + ["nobody-here"]),
        link=st.sampled_from(["ok", "ok", "ok", "ok", "stale", "gap", "bad_prev"]),
        rival=st.one_of(st.none(), st.sampled_from(LABEL_KINDS)),
    ),
    min_size=1,
    max_size=25,
)


class World:
    """A cast and one label's chain as the pure rules see it."""

    def __init__(self, cast: Cast, lot: str):
        self.cast = cast
        self.actors = {a: cast.actor_state(a) for a in Cast.ROLES}.get
        self.lot = lot
        self.lot_recalled = False
        self.lot_head: tuple[int, bytes] | None = None

    def event(self, serial: str, head: tuple[int, bytes], c: Command, kind: str | None = None):
        """The signed event ``c`` describes, pointing at ``head`` as ``c.link`` says;
        None when the field rules already refuse to build it (e.g. seq 0 after a
        genesis, which decoding refuses in the ledger too)."""
        kind = kind or c.kind
        seq, prev = head[0] + 1, head[1]
        if c.link == "stale":
            seq -= 1
        elif c.link == "gap":
            seq += 1
        elif c.link == "bad_prev":
            prev = bytes(32) if prev != bytes(32) else b"\x01" * 32
        try:
            return self.cast.event(c.signer, "label", serial, kind, payload(kind, c.consignee), seq=max(seq, 0), prev=prev, advance=False)
        except Refused:
            return None

    def lot_event(self, c: Command):
        subject = f"{gtin()}/{self.lot}"
        seq, prev = (self.lot_head[0] + 1, self.lot_head[1]) if self.lot_head else (0, bytes(32))
        return self.cast.event(c.signer, "lot", subject, "Recalled", {"reason": "spot check failed"}, seq=seq, prev=prev, advance=False)

    @staticmethod
    def expects(label: ModelLabel, c: Command, kind: str | None = None) -> bool:
        """The oracle's answer: may ``c`` be appended on top of ``label``?"""
        return links(c) and MODEL.allows(label, kind or c.kind, c.signer, c.consignee)

    def accepts(self, state, signed) -> bool:
        """The code under test (the pure rules): does ``authorize`` accept ``signed`` on ``state``?"""
        try:
            authorize(state, signed.event, signer_of(signed.event, self.actors), self.actors)
            return True
        except Refused:
            return False


def assert_legal(before: LabelState, after: LabelState, kind: str) -> None:
    assert after.status in STATUSES
    assert after.custodian is not None
    assert (after.status == "in_transit") == (after.consignee is not None)
    assert after.serial == before.serial and after.producer == before.producer and after.gtin == before.gtin
    # one-way facts never revert
    assert after.recalled >= before.recalled and after.counterfeit >= before.counterfeit
    if before.status == "decommissioned":
        assert after.status == "decommissioned"
    if after.counterfeit and not before.counterfeit:
        assert kind == "FlaggedCounterfeit"


def assert_never_genuine_when_bad(state: LabelState, lot_recalled: bool) -> None:
    answer, *_ = verdict(dataclasses.asdict(state), lot_recalled)
    if state.recalled or state.counterfeit or lot_recalled:
        assert answer != "genuine", (answer, state)


# ------------------------------------------------------------ the pure rules


@hyp_settings(max_examples=300, deadline=None)
@given(commands)
def test_no_command_sequence_breaks_the_pure_rules(seq_of_commands):
    cast = Cast()
    world = World(cast, "L1")
    serial = gs1.new_serial()
    issued = cast.event("acme", "label", serial, "Issued", issued_payload(), advance=False)
    state = fold(None, issued.event, issued.hash)
    label = ModelLabel(producer="acme", custodian="acme")
    chain = [(issued.event.seq, issued.event.prev_hash, issued.hash)]
    assert model_of(state) == expected_of(label)
    for c in seq_of_commands:
        if c.kind == "LotRecalled":
            signed = world.lot_event(c)
            expected = MODEL.allows_lot_recall(c.signer, world.lot_recalled)
            assert world.accepts(None if world.lot_head is None else _lot_state(world), signed) == expected, c
            if expected:
                world.lot_recalled, world.lot_head = True, (signed.event.seq, signed.hash)
        else:
            signed = world.event(serial, (state.seq, state.head), c)
            if signed is None:
                continue
            expected = World.expects(label, c)
            assert world.accepts(state, signed) == expected, (c, label)
            if expected:
                after = fold(state, signed.event, signed.hash)
                assert_legal(state, after, c.kind)
                state, label = after, MODEL.apply(label, c.kind, c.consignee)
                assert model_of(state) == expected_of(label), (c, state)
                chain.append((signed.event.seq, signed.event.prev_hash, signed.hash))
        assert_never_genuine_when_bad(state, world.lot_recalled)
    # one linear chain
    assert [s for s, _, _ in chain] == list(range(len(chain)))
    assert all(chain[i][1] == chain[i - 1][2] for i in range(1, len(chain)))


def test_the_rules_agree_with_the_table_in_every_reachable_state():
    """Exhaustive, beside the random sequences (which rarely draw, say, a second
    ``Decommissioned`` by the right signer): from an issued label, every state the table
    can reach, and in each every kind by every signer (and to every consignee, for
    ``Shipped``), the code's answer and resulting state against the table's."""
    cast = Cast()
    world = World(cast, "L1")
    serial = gs1.new_serial()
    issued = cast.event("acme", "label", serial, "Issued", issued_payload(), advance=False)
    start = ModelLabel(producer="acme", custodian="acme")
    frontier, seen, checked = [(fold(None, issued.event, issued.hash), start)], {expected_of(start)}, 0
    while frontier:
        state, label = frontier.pop()
        for kind in LABEL_KINDS:
            for signer in ACTORS:
                for consignee in ACTORS + ["nobody-here"] if kind == "Shipped" else ["distributor"]:
                    c = Command(kind, signer, consignee, "ok", None)
                    signed = world.event(serial, (state.seq, state.head), c)
                    if signed is None:
                        continue
                    expected = World.expects(label, c)
                    assert world.accepts(state, signed) == expected, (c, label)
                    checked += 1
                    if expected:
                        after, nxt = fold(state, signed.event, signed.hash), MODEL.apply(label, kind, consignee)
                        assert model_of(after) == expected_of(nxt), (c, after)
                        if expected_of(nxt) not in seen:
                            seen.add(expected_of(nxt))
                            frontier.append((after, nxt))
    # Every status, both one-way flags, custody moved: the table was walked, not sampled.
    assert {s[0] for s in seen} == STATUSES and any(s[3] and s[4] for s in seen) and len({s[1] for s in seen}) > 1, seen
    assert len(seen) >= 100 and checked > 9000, (len(seen), checked)  # 100 states, 9,800 (state, event) pairs on main


def _lot_state(world: World) -> LotState:
    seq, head = world.lot_head
    return LotState(gtin=gtin(), lot=world.lot, recalled=world.lot_recalled, seq=seq, head=head)


# ------------------------------------------------------------ the real ledger


def test_no_command_sequence_breaks_the_real_ledger(settings):
    # One fresh database for the whole run; every example works on its own label and lot.
    ledger = Ledger(settings)
    cast = Cast()
    assert all(r.status == "accepted" for r in ledger.append(cast.founding_events()))
    expectations: list[tuple[str, str, bool]] = []  # (serial, lot, must not be genuine)
    lots = iter(f"P{i}" for i in range(10_000))

    @hyp_settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(commands)
    def run(seq_of_commands):
        world = World(cast, next(lots))
        serial = gs1.new_serial()
        issued = cast.event("acme", "label", serial, "Issued", issued_payload(lot=world.lot), advance=False)
        assert [r.status for r in ledger.append([issued])] == ["accepted"]
        head = (issued.event.seq, issued.hash)  # the oracle's chain head, from what was accepted
        label = ModelLabel(producer="acme", custodian="acme")
        for c in seq_of_commands:
            if c.kind == "LotRecalled":
                signed = world.lot_event(c)
                expected = MODEL.allows_lot_recall(c.signer, world.lot_recalled)
                (result,) = ledger.append([signed])
                assert (result.status == "accepted") == expected, (c, result.as_dict())
                if expected:
                    world.lot_recalled, world.lot_head = True, (signed.event.seq, signed.hash)
                continue
            signed = world.event(serial, head, c)
            if signed is None:
                continue
            batch = [signed]
            rival = c.rival and world.event(serial, head, Command(c.rival, c.signer, c.consignee, c.link, None), kind=c.rival)
            if rival:  # a second, different event for the same position: at most one gets in
                batch.append(rival)
            results = ledger.append(batch)
            expected = World.expects(label, c)
            assert (results[0].status == "accepted") == expected, (c, label, results[0].as_dict())
            if expected:
                head, label = (signed.event.seq, signed.hash), MODEL.apply(label, c.kind, c.consignee)
            if len(results) == 2:
                assert results[1].status != "accepted" or results[0].status != "accepted", "two events took one position"
                if results[1].status == "accepted":
                    # Only possible when the first was refused: the rival then stood on the same head.
                    assert World.expects(label, c, kind=c.rival), (c, label)
                    head, label = (rival.event.seq, rival.hash), MODEL.apply(label, c.rival, c.consignee)
            stored = ledger.head("label", serial)  # the stored chain is the oracle's chain
            assert (stored["seq"], stored["hash"], stored["broken"]) == (head[0], head[1].hex(), None)
        expectations.append((serial, world.lot, label.recalled or label.counterfeit or world.lot_recalled))

    try:
        run()
        # The same labels through the relay and the projector: the read model's
        # verdict is never "genuine" for a recalled, flagged or lot-recalled label.
        relay_all(settings)
        project_all(settings)
        with psycopg.connect(settings.pg_conninfo, row_factory=dict_row) as conn:
            assert conn.execute("SELECT count(*) AS n FROM verification.quarantine").fetchone()["n"] == 0
            bad = 0
            for serial, _lot, must_not_be_genuine in expectations:
                view = read_view(conn, serial)
                assert view["verdict"] != "unknown"
                if must_not_be_genuine:
                    bad += 1
                    assert view["verdict"] != "genuine", view
        assert bad > 0, "no example recalled or flagged a label: the property was never exercised"
    finally:
        ledger.close()
