"""Aggregation (cases, pallets) and transformation (lot graph) through the ledger,
real Kafka and PostgreSQL, the verification projector and the auditor's replay."""

from __future__ import annotations

import threading

import psycopg
import pytest

from consumers.auditor import Auditor
from consumers.checkpointer import load_or_create_log_key
from ledger import gs1
from ledger.errors import Refused
from ledger.events import SignedEvent
from ledger.service import Ledger
from projections.verification import read_view
from tests.helpers import PREFIX, Cast, gtin, scanned_payload, shipped_payload
from tests.pipeline import project_all, relay_all

SUPPLIER_PREFIX = "6909876"


def sscc(n: int, prefix: str = PREFIX) -> str:
    return gs1.make_sscc(0, prefix, n)


def supplier_gtin(item: str = "00011") -> str:
    body = "0" + SUPPLIER_PREFIX + item
    return body + str(gs1.gtin_check_digit(body))


CELLS = f"{supplier_gtin()}/CELL-7"  # the supplier's cell lot (other-producer)
PACKS = f"{gtin('00002')}/PACK-1"  # acme's battery lot made from it


def pack_batch(cast: Cast, signer: str, box: str, children: list[str], unpack: bool = False, territory=None, channel=None) -> list[SignedEvent]:
    """The all-or-nothing batch of a pack (or unpack): the container's event, then each child's."""
    kind, child_kind = ("Unpacked", "UnpackedFrom") if unpack else ("Packed", "PackedInto")
    child_payload = {"container": box, "territory": territory, "channel": channel} if unpack else {"container": box}
    batch = [cast.event(signer, "container", box, kind, {"children": children, "region": "4403"})]
    for child in children:
        batch.append(cast.event(signer, "container" if gs1.is_sscc(child) else "label", child, child_kind, child_payload))
    return batch


def accepted(results) -> bool:
    return all(r.status == "accepted" for r in results)


def codes(results) -> set[str]:
    return {r.error.code for r in results if r.error}


@pytest.fixture
def world(fresh_settings, tmp_path):
    settings = fresh_settings(log_key=tmp_path / "log.key")  # the auditor needs the log's public key
    ledger = Ledger(settings)
    cast = Cast()
    assert accepted(ledger.append(cast.founding_events()))
    yield settings, ledger, cast
    ledger.close()


def view(settings, serial, schema="verification"):
    with psycopg.connect(settings.pg_conninfo) as conn:
        return read_view(conn, serial, schema)


def build_network(ledger: Ledger, cast: Cast) -> dict:
    """Cells lot -> battery lot, 6 units in 2 cases on 1 pallet, all by acme."""
    units = [gs1.new_serial() for _ in range(6)]
    case1, case2, pallet = sscc(1), sscc(2), sscc(3)
    setup = [
        cast.event("other-producer", "lot", CELLS, "LotCommissioned", {"product": "18650 cells", "certificates": ["CCC 2024011606123456"], "region": "3205"}),
        cast.event("acme", "lot", PACKS, "Transformed", {"inputs": [CELLS], "region": "4403"}),
    ]
    setup += [cast.issue(u, g=gtin("00002"), lot="PACK-1") for u in units]
    setup += [cast.event("acme", "container", box, "ContainerCreated", {"level": level, "region": "4403"})
              for box, level in ((case1, "case"), (case2, "case"), (pallet, "pallet"))]
    assert accepted(ledger.append(setup))
    assert accepted(ledger.append(pack_batch(cast, "acme", case1, units[:3])))
    assert accepted(ledger.append(pack_batch(cast, "acme", case2, units[3:])))
    assert accepted(ledger.append(pack_batch(cast, "acme", pallet, [case1, case2])))
    return {"units": units, "case1": case1, "case2": case2, "pallet": pallet}


def test_pack_ship_pallet_unpack_ship_units_scan_and_recall_the_input_lot(world, tmp_path):
    settings, ledger, cast = world
    net = build_network(ledger, cast)
    units, pallet, case1, case2 = net["units"], net["pallet"], net["case1"], net["case2"]

    # One event ships and receives everything on the pallet.
    assert accepted(ledger.append([cast.event("acme", "container", pallet, "Shipped", shipped_payload("distributor", "44", "offline_retail"))]))
    assert accepted(ledger.append([cast.event("distributor", "container", pallet, "Received", {"region": "4403"})]))
    relay_all(settings)
    assert project_all(settings).quarantined == 0
    inside = view(settings, units[0])
    assert inside["verdict"] == "genuine"
    assert inside["in_container"] == case1
    assert [c["sscc"] for c in inside["containers"]] == [case1, pallet]
    assert inside["custodian"] == "distributor" and inside["status"] == "received" and inside["territory"] == "44"
    pallet_steps = [(t["kind"], t.get("container")) for t in inside["trail"] if t.get("container")]
    assert pallet_steps == [("Shipped", pallet), ("Received", pallet)]

    # The distributor splits the pallet and a case, and ships units onward.
    assert accepted(ledger.append(pack_batch(cast, "distributor", pallet, [case1, case2], unpack=True, territory="44", channel="offline_retail")))
    assert accepted(ledger.append(pack_batch(cast, "distributor", case1, units[:3], unpack=True, territory="44", channel="offline_retail")))
    onward = [cast.event("distributor", "label", u, "Shipped", shipped_payload("retailer", "4403", "offline_retail")) for u in units[:2]]
    onward += [cast.event("retailer", "label", u, "Received", {"region": "440305"}) for u in units[:2]]
    onward.append(cast.event("gateway", "label", units[0], "Scanned", scanned_payload(region="440305")))
    assert accepted(ledger.append(onward))
    relay_all(settings)
    assert project_all(settings).quarantined == 0
    shelf = view(settings, units[0])
    assert shelf["verdict"] == "genuine" and shelf["custodian"] == "retailer" and shelf["in_container"] is None
    assert shelf["scan_count"] == 1 and shelf["territory"] == "4403"
    assert view(settings, units[3])["in_container"] == case2  # still in its case, at the distributor
    assert view(settings, units[3])["custodian"] == "distributor"

    # A regulator recalls the supplier's cell lot: one event; every unit made from it answers recalled.
    assert accepted(ledger.append([cast.event("regulator", "lot", CELLS, "Recalled", {"reason": "cells overheat"})]))
    relay_all(settings)
    assert project_all(settings).quarantined == 0
    for u in units:
        v = view(settings, u)
        assert v["verdict"] == "recalled", u
        assert any(CELLS in r for r in v["reasons"])

    # The regulator's auditor (Kafka and public keys only; the ledger's rules, cross-chain ones
    # included, in log order) finds nothing wrong, and ends in the same container states.
    report = Auditor(settings, load_or_create_log_key(settings.log_key).public_key, state_path=tmp_path / "audit.state").run()
    assert report.ok, [f.line() for f in report.failures]
    assert report.state.replay.states[("container", pallet)].contents == 0
    assert report.state.replay.states[("label", units[3])].container == case2

    # Rebuilding from the topic gives the same read model, containers and lot graph included.
    project_all(settings, schema="rebuilt")
    with psycopg.connect(settings.pg_conninfo) as conn:
        for table, order in (("labels", "serial"), ("containers", "sscc"), ("memberships", "child, packed_seq"), ("lots", "gtin, lot"), ("lot_inputs", "output_lot")):
            live = conn.execute(f"SELECT * FROM verification.{table} ORDER BY {order}").fetchall()
            assert live == conn.execute(f"SELECT * FROM rebuilt.{table} ORDER BY {order}").fetchall(), table
            assert live, table
    assert view(settings, units[4], "rebuilt") == view(settings, units[4])


def test_a_recalled_pallet_recalls_what_was_on_it_at_the_time(world):
    settings, ledger, cast = world
    net = build_network(ledger, cast)
    # case2 comes off the pallet before the recall; case1 stays on it.
    assert accepted(ledger.append(pack_batch(cast, "acme", net["pallet"], [net["case2"]], unpack=True)))
    assert accepted(ledger.append([cast.event("acme", "container", net["pallet"], "Recalled", {"reason": "water damage"})]))
    relay_all(settings)
    assert project_all(settings).quarantined == 0
    for u in net["units"][:3]:
        v = view(settings, u)
        assert v["verdict"] == "recalled" and any(net["pallet"] in r for r in v["reasons"])
    for u in net["units"][3:]:
        assert view(settings, u)["verdict"] == "genuine"


def test_bad_aggregation_and_transformation_inputs_are_refused_and_write_nothing(world):
    settings, ledger, cast = world
    net = build_network(ledger, cast)
    units, case2 = net["units"], net["case2"]

    def refused_whole(batch, code):
        heads_before = ledger.heads([(("container" if gs1.is_sscc(s.event.subject) else s.event.subject_type), s.event.subject) for s in batch])
        results = ledger.append(batch)
        assert all(r.status == "refused" for r in results), results
        assert code in codes(results), codes(results)
        assert ledger.heads([(("container" if gs1.is_sscc(s.event.subject) else s.event.subject_type), s.event.subject) for s in batch]) == heads_before
        for s in batch:  # the test's head tracker must not move past what was refused
            cast.heads[(s.event.subject_type, s.event.subject)] = (s.event.seq - 1, s.event.prev_hash)
        return results

    # A unit already in a case cannot go into another (the case is on the pallet: unpack that first).
    assert accepted(ledger.append(pack_batch(cast, "acme", net["pallet"], [case2], unpack=True)))
    refused_whole(pack_batch(cast, "acme", case2, [units[0]]), "already_packed")
    # Unpacking by someone who is not the container's custodian.
    refused_whole(pack_batch(cast, "retailer", case2, [units[3]], unpack=True), "not_authorized")
    # A packed unit is not shipped on its own.
    refused_whole([cast.event("acme", "label", units[3], "Shipped", shipped_payload("distributor"))], "packed")
    # The container's list and the children's events must match.
    refused_whole(pack_batch(cast, "acme", case2, [units[0]])[:1], "unpaired_aggregation")
    # Transformation from a lot nobody commissioned.
    refused_whole([cast.event("acme", "lot", f"{gtin('00003')}/X1", "Transformed", {"inputs": [f"{supplier_gtin()}/NOPE"], "region": None})], "unknown_lot")
    # A malformed SSCC is refused before anything is signed.
    with pytest.raises(Refused) as err:
        cast.event("acme", "container", "123456789012345678", "ContainerCreated", {"level": "case", "region": None})
    assert err.value.code == "invalid_sscc"
    with pytest.raises(Refused) as err:
        cast.event("acme", "label", units[0], "PackedInto", {"container": "12345"}, advance=False)
    assert err.value.code == "invalid_sscc"


def test_a_unit_is_in_one_container_at_a_time_under_concurrency(world):
    """Two packers on separate connections race to put the same unit into two cases, 10 rounds:
    each round exactly one whole batch is written."""
    settings, ledger, cast = world
    other = Ledger(settings)
    boxes = [sscc(100 + i) for i in range(20)]
    try:
        ledger.append([cast.event("acme", "container", b, "ContainerCreated", {"level": "case", "region": None}) for b in boxes])
        for round_no in range(10):
            unit = gs1.new_serial()
            assert accepted(ledger.append([cast.issue(unit)]))
            box_a, box_b = boxes[2 * round_no], boxes[2 * round_no + 1]
            a = pack_batch(cast, "acme", box_a, [unit])
            cast.heads[("label", unit)] = (0, a[1].event.prev_hash)  # b signs on the same head of the unit
            b = pack_batch(cast, "acme", box_b, [unit])
            barrier = threading.Barrier(2)
            out = {}

            def write(name, writer, batch):
                barrier.wait()  # noqa: B023 - called within this iteration
                out[name] = writer.append(batch)  # noqa: B023 - called within this iteration

            threads = [threading.Thread(target=write, args=("a", ledger, a)), threading.Thread(target=write, args=("b", other, b))]
            [t.start() for t in threads]
            [t.join() for t in threads]
            wins = [name for name, results in out.items() if accepted(results)]
            assert len(wins) == 1, (round_no, out)
            loser = out["b" if wins == ["a"] else "a"]
            assert all(r.status == "refused" for r in loser)
            winner_box = box_a if wins == ["a"] else box_b
            loser_box = box_b if wins == ["a"] else box_a
            chain = ledger.app.load_chain("label", unit)
            assert chain.state.container == winner_box and chain.length == 2
            assert ledger.app.load_chain("container", loser_box).length == 1  # its Packed was not written either
            assert ledger.app.load_chain("container", winner_box).state.contents == 1
            cast.heads[("label", unit)] = (1, chain.head)
            cast.heads[("container", loser_box)] = (0, ledger.app.load_chain("container", loser_box).head)
    finally:
        other.close()
