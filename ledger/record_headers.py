"""Kafka record headers the relay sets (``log_index``, ``event_id``), read without importing the relay."""

from __future__ import annotations


def header(record, name: str) -> bytes | None:
    """The value of header ``name`` of a Kafka record, or None."""
    for k, v in record.headers or ():
        if k == name:
            return v
    return None
