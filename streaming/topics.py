"""The names of the Kafka topics SocialPulse uses (set from the config object)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Topics:
    """Raw posts, scored posts and dead letters; `partitions` of the raw and scored ones;
    and the one-partition channel that carries Socket.IO messages between web nodes."""

    posts: str
    scored: str
    dlq: str
    partitions: int
    socketio: str = "socketio"
