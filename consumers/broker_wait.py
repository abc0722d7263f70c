"""Long-running consumers wait for the broker at start-up instead of exiting.

kafka-python (3.x) raises ``KafkaTimeoutError`` ("Unable to bootstrap from
...") from a client's constructor when no bootstrap server answers within 30 s.
A projector or detector started before Kafka is up (a reboot, a broker restart,
services started in the wrong order) would exit and stay down. Once running,
the clients reconnect by themselves, so only construction needs the retry.
"""

from __future__ import annotations

import time
from typing import Callable, TypeVar

from kafka.errors import RetriableError

from ledger.logging_setup import get_logger

log = get_logger("broker_wait")

T = TypeVar("T")


def build_when_broker_answers(build: Callable[[], T], *, what: str, first_delay: float = 0.5, max_delay: float = 10.0) -> T:
    """``build()``, retried with doubling delays (up to ``max_delay`` s) while no broker answers.

    Only Kafka's retriable errors (a timeout, a refused connection) are retried:
    any other error (a bad setting, the database refusing) still ends the
    process with its own message.
    """
    delay = first_delay
    while True:
        try:
            return build()
        except RetriableError as exc:
            log.warning("broker_unavailable_retrying", what=what, retry_in_s=delay, error=str(exc))
            time.sleep(delay)
            delay = min(delay * 2, max_delay)
