"""Run the diversion / counterfeit detector: ``python -m consumers.detector``.

Consumes ``label-events`` in its own consumer group into its own schema
(default ``alerts``), and tails ``scan_inbox`` for scans of never-issued codes.
With a key (``TRACELEDGER_DETECTOR_KEY``, a registered actor of role ``detector``)
it opens each alert it raises with a signed ``AlertRaised``
(:mod:`consumers.alert_raiser`).
``--config FILE`` (JSON, see :mod:`projections.detection_config`) changes
thresholds; ``--rebuild`` drops the schema, lays it out again through the migrations
(:mod:`ledger.migrate`) and replays the topic.
"""

from __future__ import annotations

import argparse
import signal
import time

import psycopg
from eventsourcing import persistence as es_persistence

from consumers.alert_raiser import AlertRaiser
from consumers.broker_wait import build_when_broker_answers
from consumers.exactly_once import TransactionalConsumer
from consumers.projector import label_events_consumer
from ledger import migrate
from ledger.config import Settings
from ledger.keys import KeyPair
from ledger.logging_setup import configure, get_logger
from ledger.service import Ledger
from projections.alerts import DEFAULT_SCHEMA, AlertDetector, UnknownCodeTail
from projections.detection_config import DetectionConfig

log = get_logger("detector")

TAIL_EVERY_SECONDS = 1.0


class Detector:
    """The label-event consumer, the unknown-code tail and the alert raiser, run in one loop."""

    def __init__(self, consumer: TransactionalConsumer, tail: UnknownCodeTail, ledger: Ledger, raiser: AlertRaiser | None = None):
        self.consumer, self.tail, self.ledger, self.raiser = consumer, tail, ledger, raiser
        self.stop = consumer.stop

    def run(self, *, until_idle: bool = False) -> None:
        """Poll until stopped (or, with ``until_idle``, until both sources are drained)."""
        idle, last_tail = 0, 0.0
        while not self.stop.is_set():
            n = self.consumer.poll_once()
            t = r = 0
            if n == 0 or time.monotonic() - last_tail >= TAIL_EVERY_SECONDS:
                try:
                    t = self.tail.poll()
                    # Raised alerts are signed after the transaction that registered them committed.
                    r = self.raiser.raise_once() if self.raiser else 0
                except (psycopg.OperationalError, es_persistence.OperationalError) as exc:  # the database blinked: next round retries
                    log.warning("inbox_tail_retry", error=str(exc))
                last_tail = time.monotonic()
            if until_idle:
                idle = idle + 1 if n == 0 and t == 0 and r == 0 else 0
                if idle >= 2 and self.consumer.lag() == 0:
                    break

    def close(self) -> None:
        self.consumer.close()
        if self.raiser:
            self.raiser.close()
        self.ledger.close()


def build(settings: Settings, *, schema: str = DEFAULT_SCHEMA, group: str | None = None, config: DetectionConfig | None = None) -> Detector:
    """A detector consuming ``label-events`` into ``schema``."""
    config = config or DetectionConfig()
    signs = settings.detector_key is not None
    consumer = label_events_consumer(
        settings,
        group=group or f"{settings.topic_prefix}detector-{schema}",
        schema=schema,
        kind="alerts",
        make_handler=lambda feed: AlertDetector(schema, feed, config, signed=signs),
    )
    ledger = Ledger(settings)
    raiser = AlertRaiser(ledger, KeyPair.load(settings.detector_key), settings.pg_conninfo) if signs else None

    def issued(serials: list[str]) -> set[str]:
        heads = ledger.heads([("label", s) for s in serials])
        return {s for s, head in heads.items() if head is not None}

    tail = UnknownCodeTail(schema, config, lambda: consumer.conn, issued, signed=signs)
    return Detector(consumer, tail, ledger, raiser)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="traceledger diversion and counterfeit detector")
    parser.add_argument("--schema", default=DEFAULT_SCHEMA)
    parser.add_argument("--config", help="JSON file of detection thresholds (see projections/detection_config.py)")
    parser.add_argument("--rebuild", action="store_true", help="drop the alerts schema and rebuild it from the topic")
    parser.add_argument("--until-idle", action="store_true", help="exit once caught up")
    args = parser.parse_args(argv)
    configure()
    settings = Settings.from_env()
    config = DetectionConfig.load(args.config)
    if args.rebuild:
        migrate.rebuild_read_model(settings.pg_conninfo, args.schema, "alerts")
        log.info("alerts_dropped", schema=args.schema)
    detector = build_when_broker_answers(lambda: build(settings, schema=args.schema, config=config), what="detector")
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: detector.stop.set())
    log.info("detector_started", schema=args.schema, topic=settings.label_topic)
    started, applied = time.monotonic(), 0
    try:
        detector.run(until_idle=args.until_idle)
    finally:
        applied = detector.consumer.applied
        elapsed = time.monotonic() - started
        log.info("detector_stopped", applied=applied, quarantined=detector.consumer.quarantined,
                 seconds=round(elapsed, 1), events_per_second=round(applied / elapsed, 1) if elapsed else None)
        detector.close()


if __name__ == "__main__":
    main()
