"""The broker follows the ledger: a regulator revoked on the ledger loses its Kafka login.

A regulator reads the raw event stream with a broker principal of its own,
``regulator-<actor id>``, which has the auditor's rights (consumers/broker_access.py;
created with ``python -m consumers.broker_access add-user regulator-<id> --role auditor``,
the password on stdin). This process, which ops/services.sh runs as admin, reads the
actor topic and, once the registrar's ``ActorRevoked`` for such an actor is there,
revokes its principal: its ACLs at once (open connections included), its credential
with them. Only the ledger decides: a principal whose actor the ledger does not
know, or knows as not revoked, is left alone.
"""

from __future__ import annotations

import signal
import threading

from consumers import broker_access
from consumers.actor_feed import ActorFeed
from consumers.broker_wait import build_when_broker_answers
from ledger.config import Settings
from ledger.logging_setup import configure, get_logger
from ledger.registry import ActorRegistry

log = get_logger("broker_revocations")

REGULATOR_PREFIX = "regulator-"


def regulator_principal(actor_id: str) -> str:
    """The broker principal of the regulator actor ``actor_id``."""
    return f"{REGULATOR_PREFIX}{actor_id}"


def revoke_revoked_regulators(settings: Settings, registry: ActorRegistry) -> list[str]:
    """Revoke every regulator principal whose actor ``registry`` says is revoked; return them."""
    with broker_access.admin_client(settings) as admin:
        users = admin.describe_user_scram_credentials()
    revoked = []
    for user in sorted(users):
        if not user.startswith(REGULATOR_PREFIX):
            continue
        actor = registry.as_of(user.removeprefix(REGULATOR_PREFIX))
        if actor is not None and actor.role == "regulator" and actor.revoked:
            broker_access.revoke(settings, user)
            revoked.append(user)
    if revoked:
        log.info("regulators_locked_out", principals=revoked)
    return revoked


def follow(settings: Settings, stop: threading.Event, every_seconds: float = 2.0) -> None:
    """Until ``stop``: read new actor events, and lock out what they revoked."""
    feed = build_when_broker_answers(lambda: ActorFeed(settings), what="broker revocations")
    try:
        feed.catch_up()
        revoke_revoked_regulators(settings, feed.registry)
        while not stop.wait(every_seconds):
            if feed.catch_up():
                revoke_revoked_regulators(settings, feed.registry)
    finally:
        feed.close()


def main() -> None:
    configure()
    settings = Settings.from_env()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    log.info("broker_revocations_started", topic=settings.actor_topic, principal=settings.kafka_user)
    follow(settings, stop)


if __name__ == "__main__":
    main()
