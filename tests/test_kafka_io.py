"""Kafka client pieces that need no broker."""

from __future__ import annotations

import random

from kafka.partitioner.default import DefaultPartitioner

from streaming.kafka_io import KeyHashPartitioner


class SixPartitions:
    """The slice of the client's cluster metadata a partitioner reads."""

    def topics(self):
        return {"posts"}

    def partitions_for_topic(self, topic):
        return {5, 3, 1, 0, 2, 4}

    def available_partitions_for_topic(self, topic):
        return self.partitions_for_topic(topic)


def test_key_hash_partitioner_places_keys_like_the_default_partitioner():
    rng = random.Random(7)
    keys = [rng.randbytes(rng.randint(1, 30)) for _ in range(300)]
    cached = KeyHashPartitioner(max_keys=50)  # small, so the cache is also cleared
    default = DefaultPartitioner()
    cluster = SixPartitions()
    for key in keys + keys:
        assert cached.partition("posts", None, key, None, None, cluster) == default.partition(
            "posts", None, key, None, None, cluster
        )
    assert len(cached._hashes) <= 50


def test_key_hash_partitioner_spreads_keyless_messages():
    cached = KeyHashPartitioner()
    chosen = {
        cached.partition("posts", None, None, None, None, SixPartitions()) for _ in range(200)
    }
    assert chosen == {0, 1, 2, 3, 4, 5}
