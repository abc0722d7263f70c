"""Topic creation on the real broker: every topic comes back with its partitions, at once usable."""

from __future__ import annotations

from consumers.topics import ensure_topics, topic_specs


def test_new_topics_are_returned_with_their_partition_counts(fresh_settings):
    """Right after creation the broker may describe a topic with no partitions yet; the counts
    handed to the relay's partitioner must never be 0 (it divided by zero before)."""
    for _ in range(5):
        settings = fresh_settings(migrated=False)
        counts = ensure_topics(settings)
        assert counts == topic_specs(settings)
        assert ensure_topics(settings) == counts  # idempotent: the second call creates nothing
