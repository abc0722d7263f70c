"""Running the gateway's scan recorder beside the API, once across its worker processes.

Scans are answered at once and kept in the scan inbox
(:mod:`ledger.scan_inbox`); the recorder thread the API starts turns them
into ledger events signed with the gateway key (``TRACELEDGER_GATEWAY_KEY``).
"""

from __future__ import annotations

import threading

import psycopg

from ledger import scan_inbox
from ledger.config import Settings
from ledger.keys import KeyPair
from ledger.logging_setup import get_logger
from ledger.service import Ledger

log = get_logger("api")

# Any fixed number: the advisory lock that lets one API worker process at a time record scans.
RECORDER_LOCK = 0x7363616E73


def record_scans(recorder: scan_inbox.ScanRecorder, settings: Settings) -> None:
    """Run the scan recorder; with several worker processes, only in the one holding the lock.

    Two recorders would stay correct (a batch's tracking record is unique) but
    would keep losing races to each other. The lock is a session lock: if its
    holder dies, another worker's thread takes over.
    """
    if settings.api_workers <= 1:
        recorder.run()
        return
    while not recorder.stop.is_set():
        try:
            with psycopg.connect(settings.pg_conninfo, autocommit=True) as conn:
                conn.execute("SELECT pg_advisory_lock(%s)", (RECORDER_LOCK,))
                log.info("scan_recorder_active")
                recorder.run()
        except psycopg.OperationalError as exc:
            log.warning("scan_recorder_lock_lost", error=str(exc))
            recorder.stop.wait(2.0)


def start_recorder(ledger: Ledger, settings: Settings) -> scan_inbox.ScanRecorder | None:
    """Start the recorder thread; None (and a warning) without a gateway key."""
    if not settings.gateway_key:
        log.warning("no_gateway_key", detail="scans are accepted into the inbox but not recorded until TRACELEDGER_GATEWAY_KEY is set")
        return None
    recorder = scan_inbox.ScanRecorder(ledger, KeyPair.load(settings.gateway_key), settings.pg_conninfo, batch=settings.scan_batch)
    threading.Thread(target=record_scans, args=(recorder, settings), name="scan-recorder", daemon=True).start()
    return recorder
