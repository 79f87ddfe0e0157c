"""The names of the Kafka topics SocialPulse uses (set from the config object)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Topics:
    """Raw posts, scored posts and dead letters; `partitions` of the raw and scored ones."""

    posts: str
    scored: str
    dlq: str
    partitions: int
