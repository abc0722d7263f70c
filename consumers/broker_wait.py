"""Long-running consumers wait for the broker at start-up instead of exiting.

kafka-python (3.x) raises ``KafkaTimeoutError`` ("Unable to bootstrap from
...") from a client's constructor when no bootstrap server answers within 30 s.
A projector or detector started before Kafka is up (a reboot, a broker restart,
services started in the wrong order) would exit and stay down. Once running,
the clients reconnect by themselves, so only construction needs the retry.

The same holds for a PostgreSQL server that is restarting at that moment
("the database system is shutting down" / "starting up", connection refused):
the chaos test (``tests/test_faults.py``) caught a projector restarted during a
database restart exiting for good. Those are waited out too; any other
database error (a wrong password, a missing database) still ends the process.
"""

from __future__ import annotations

import time
from typing import Callable, TypeVar

import psycopg
from eventsourcing import persistence as es_persistence
from kafka.errors import RetriableError

from ledger.logging_setup import get_logger

log = get_logger("broker_wait")

T = TypeVar("T")

# What a server says while it restarts: wait, it will answer again.
_DATABASE_RESTARTING = ("the database system is shutting down", "the database system is starting up",
                        "the database system is in recovery mode", "Connection refused",
                        "server closed the connection unexpectedly", "terminating connection due to administrator command")


def database_restarting(exc: BaseException) -> bool:
    """True for a connection error a restarting PostgreSQL gives (not a bad setting)."""
    if isinstance(exc, (psycopg.errors.AdminShutdown, psycopg.errors.CrashShutdown, psycopg.errors.CannotConnectNow)):
        return True
    return isinstance(exc, (psycopg.OperationalError, es_persistence.OperationalError)) and any(
        text in str(exc) for text in _DATABASE_RESTARTING)


def build_when_broker_answers(build: Callable[[], T], *, what: str, first_delay: float = 0.5, max_delay: float = 10.0) -> T:
    """``build()``, retried with doubling delays (up to ``max_delay`` s) while no broker answers.

    Only Kafka's retriable errors (a timeout, a refused connection) and a
    restarting database (:func:`database_restarting`) are retried: any other
    error (a bad setting, the database refusing) still ends the process with
    its own message.
    """
    delay = first_delay
    while True:
        try:
            return build()
        except (RetriableError, psycopg.OperationalError, es_persistence.OperationalError) as exc:
            if not isinstance(exc, RetriableError) and not database_restarting(exc):
                raise
            log.warning("broker_unavailable_retrying", what=what, retry_in_s=delay, error=str(exc))
            time.sleep(delay)
            delay = min(delay * 2, max_delay)
