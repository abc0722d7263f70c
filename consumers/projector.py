"""Run the verification projector: ``python -m consumers.projector [--schema NAME] [--rebuild]``.

Its read model's tables come from the migrations (:mod:`ledger.migrate`): at start-up the
projector applies what is pending, laying out ``--schema NAME`` from the same files as the
default ``verification`` schema; ``--rebuild`` drops the schema and lays it out again,
empty, through the same runner, then replays the topic.
"""

from __future__ import annotations

import argparse
import signal
from typing import Callable

from consumers.actor_feed import ActorFeed
from consumers.broker_wait import build_when_broker_answers
from consumers.exactly_once import Handler, TransactionalConsumer
from ledger import migrate
from ledger.commitments import SealKey
from ledger.config import Settings
from ledger.logging_setup import configure, get_logger
from projections.verification import DEFAULT_SCHEMA, VerificationProjector

log = get_logger("projector")


def label_events_consumer(
    settings: Settings, *, group: str, schema: str, kind: str, make_handler: Callable[[ActorFeed], Handler]
) -> TransactionalConsumer:
    """A TransactionalConsumer of ``label-events`` into read model ``schema`` (of ``kind``, laid
    out by the migrations if it is not yet) whose handler checks signers against an
    :class:`ActorFeed` (caught up first, closed with the consumer)."""
    migrate.upgrade(settings.pg_conninfo, read_models={schema: kind})
    feed = ActorFeed(settings)
    try:
        feed.catch_up()
        consumer = TransactionalConsumer(
            settings,
            group=group,
            topics=[settings.label_topic],
            schema=schema,
            handler=make_handler(feed),
        )
    except BaseException:  # e.g. the broker went away between the two clients: retried whole by the caller
        feed.close()
        raise
    consumer.closers.append(feed.close)
    return consumer


def build(settings: Settings, *, schema: str = DEFAULT_SCHEMA, group: str | None = None) -> TransactionalConsumer:
    """A verification projector consuming ``label-events`` into ``schema``."""
    return label_events_consumer(
        settings,
        group=group or f"{settings.topic_prefix}verification-{schema}",
        schema=schema,
        kind="verification",
        make_handler=lambda feed: VerificationProjector(schema, feed, SealKey.load_or_create(settings.seal_key_path)),
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="traceledger verification projector")
    parser.add_argument("--schema", default=DEFAULT_SCHEMA)
    parser.add_argument("--rebuild", action="store_true", help="drop the read model and rebuild it from the topic")
    parser.add_argument("--until-idle", action="store_true", help="exit once caught up")
    args = parser.parse_args(argv)
    configure()
    settings = Settings.from_env()
    if args.rebuild:
        migrate.rebuild_read_model(settings.pg_conninfo, args.schema, "verification")
        log.info("read_model_dropped", schema=args.schema)
    consumer = build_when_broker_answers(lambda: build(settings, schema=args.schema), what="projector")
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: consumer.stop.set())
    log.info("projector_started", schema=args.schema, topic=settings.label_topic)
    try:
        consumer.run(until_idle=args.until_idle)
    finally:
        consumer.close()


if __name__ == "__main__":
    main()
