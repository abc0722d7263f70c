"""A single-writer guard: at most one process of a kind (the relay) is active at a time.

The relay is the log's sequencer and its only publisher; a second one running
alongside would race it on Kafka (both re-producing "missing" entries on resume,
duplicates on the topic). Extra relays are therefore hot standbys:
:func:`hold` takes a PostgreSQL session advisory lock on a connection of its own,
waits (logging ``single_writer_standby`` once) while another process holds it, and
returns once this process is the writer.

Losing the lock (the database restarted, the session was terminated) means
another relay may take over at once, while this one still has sends in flight.
So a watchdog checks the lock's session every ``check_s`` seconds and, when it is
gone, ends the process on the spot (``os._exit(3)``: no flush, no clean-up that
could still publish). The supervisor restarts it; it then waits as a standby or
resumes through the relay's crash-recovery path. The window left is one check
interval of in-flight sends, which the relay's resume and the projectors'
idempotent apply absorb; true fencing would need Kafka transactions (a producer
epoch), which the pure-Python client's relay does not use.
"""

from __future__ import annotations

import os
import threading

import psycopg

from ledger.config import Settings
from ledger.logging_setup import get_logger

log = get_logger("single_writer")

# Not the relay's SEQUENCER_LOCK (held on the relay's own connection): this one
# belongs to the guard's connection, so the watchdog can tell it is still held.
GUARD_LOCKS = {"relay": 0x74726C6779}


class Guard:
    """The held lock: its connection and the watchdog thread."""

    def __init__(self, conn: psycopg.Connection, name: str, check_s: float, on_lost):
        self.conn, self.name, self.check_s, self.on_lost = conn, name, check_s, on_lost
        self.released = threading.Event()
        self.thread = threading.Thread(target=self._watch, name=f"{name}-guard", daemon=True)
        self.thread.start()

    def _watch(self) -> None:
        while not self.released.wait(self.check_s):
            try:
                held = self.conn.execute(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted"
                    " AND classid = %s AND objid = %s", (GUARD_LOCKS[self.name] >> 32, GUARD_LOCKS[self.name] & 0xFFFFFFFF)).fetchone()[0]
            except psycopg.Error as exc:
                held, error = 0, repr(exc)
            else:
                error = None
            if not held and not self.released.is_set():
                log.error("single_writer_lost", writer=self.name, error=error, detail="exiting at once: another may be the writer now")
                self.on_lost()
                return

    def release(self) -> None:
        self.released.set()
        # The watchdog may be mid-query on this connection: closing it under that query
        # frees libpq's connection while it is in use (a segfault, seen in make test).
        if threading.current_thread() is not self.thread:
            self.thread.join(self.check_s + 10)
            if self.thread.is_alive():
                return  # its query hangs (the server is unreachable): leave the connection to the process's end
        try:
            self.conn.close()
        except psycopg.Error:
            pass


def _exit_now() -> None:
    os._exit(3)


def hold(settings: Settings, name: str = "relay", *, stop: threading.Event | None = None, poll_s: float = 0.2,
         check_s: float = 1.0, on_lost=_exit_now) -> Guard | None:
    """Block until this process is the only ``name`` writer; the :class:`Guard`, or None if ``stop`` was set first.

    Database errors while waiting are retried (the server may be restarting)."""
    stop = stop or threading.Event()
    key = GUARD_LOCKS[name]
    announced = False
    while not stop.is_set():
        try:
            conn = psycopg.connect(settings.pg_conninfo, autocommit=True, application_name=f"traceledger-{name}-guard")
        except psycopg.OperationalError as exc:
            log.error("single_writer_waiting_for_database", writer=name, error=repr(exc))
            stop.wait(poll_s)
            continue
        try:
            while not stop.is_set():
                if conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0]:
                    log.info("single_writer_active", writer=name, pid=os.getpid())
                    return Guard(conn, name, check_s, on_lost)
                if not announced:
                    log.info("single_writer_standby", writer=name, pid=os.getpid(), detail="another process is the writer; waiting to take over")
                    announced = True
                stop.wait(poll_s)
        except psycopg.Error as exc:
            log.error("single_writer_waiting_for_database", writer=name, error=repr(exc))
            stop.wait(poll_s)
        conn.close()
    return None
