"""A projector started while no broker answers waits for one, then projects (it used to exit)."""

from __future__ import annotations

import socket
import threading
from contextlib import contextmanager

import psycopg

from projections.verification import read_view
from tests.conftest import free_port, wait_for
from tests.helpers import Cast
from tests.pipeline import founded_ledger, relay_all


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


@contextmanager
def forwarder(port: int, target: str):
    """Accept on 127.0.0.1:``port`` and pass every connection through to ``target`` (host:port):
    a broker "coming up" at an address a client was already told to use."""
    host, target_port = target.rsplit(":", 1)
    listener = socket.create_server(("127.0.0.1", port))
    conns: list[socket.socket] = [listener]

    def accept() -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection((host, int(target_port)))
            conns.extend([client, upstream])
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(a, b), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield
    finally:
        for s in conns:
            s.close()


def test_projector_started_before_the_broker_waits_then_projects(settings, services):
    cast = Cast()
    with founded_ledger(settings, cast) as (_, ledger, _):
        label = cast.issue()
        assert ledger.append([label])[0].status == "accepted"
    relay_all(settings)
    serial = label.event.subject

    port = free_port()  # nothing listens here yet: no broker answers
    # A 3 s constructor timeout (kafka-python's default is 30 s): the same wait-and-retry, sooner.
    svc = services("consumers.projector", settings.with_(kafka_bootstrap=f"127.0.0.1:{port}", kafka_bootstrap_timeout_ms=3000))
    wait_for(lambda: svc.log_path.exists() and "broker_unavailable_retrying" in svc.log_path.read_text(),
             timeout=60, what="the projector to report that no broker answers")
    assert svc.running(), svc.log_path.read_text()[-2000:]

    def verdict() -> str:
        with psycopg.connect(settings.pg_conninfo) as conn:
            try:
                return read_view(conn, serial)["verdict"]
            except psycopg.errors.UndefinedTable:
                return "no read model yet"

    with forwarder(port, settings.kafka_bootstrap):
        wait_for(lambda: verdict() == "genuine", timeout=90, what="the label projected once the broker answers")
    assert svc.running()


def test_a_restarting_database_is_waited_out_a_wrong_setting_is_not():
    from consumers.broker_wait import build_when_broker_answers, database_restarting

    shutting_down = psycopg.OperationalError('connection failed: ... FATAL:  the database system is shutting down')
    wrong_password = psycopg.OperationalError('connection failed: ... FATAL:  password authentication failed for user "x"')
    assert database_restarting(shutting_down) and not database_restarting(wrong_password)

    tries = iter([shutting_down, psycopg.OperationalError("connection failed: Connection refused"), None])

    def build():
        exc = next(tries)
        if exc is not None:
            raise exc
        return "built"

    assert build_when_broker_answers(build, what="test", first_delay=0.01) == "built"
    try:
        build_when_broker_answers(lambda: (_ for _ in ()).throw(wrong_password), what="test", first_delay=0.01)
        raise AssertionError("a wrong password must end the process, not be retried")
    except psycopg.OperationalError as exc:
        assert exc is wrong_password
