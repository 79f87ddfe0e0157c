"""Tracked topics kept in the archive, so every web node tracks the same ones.

Topics are checked before they get here (`insights.tracked`); this module stores them as
(name, keywords, hashtags).
"""

from __future__ import annotations

import json
import time

from sqlalchemy import delete, func, select

from archive.schema import tracked_topics
from archive.store import ArchiveStore

TopicRow = tuple[str, tuple[str, ...], tuple[str, ...]]  # name, keywords, hashtags


class TrackedTopicConflict(ValueError):
    """A name taken by another topic, or one topic too many."""


class TrackedTopicStore:
    """Reads and writes tracked topics; names are unique regardless of case."""

    def __init__(self, store: ArchiveStore) -> None:
        self.store = store

    def topics(self) -> list[TopicRow]:
        """Every tracked topic, by name."""
        with self.store.engine.connect() as connection:
            rows = connection.execute(select(tracked_topics).order_by(tracked_topics.c.name))
            return [
                (row.name, tuple(json.loads(row.keywords)), tuple(json.loads(row.hashtags)))
                for row in rows
            ]

    def version(self) -> tuple[int, float]:
        """Changes when a topic is saved or removed: cheap to poll."""
        with self.store.engine.connect() as connection:
            count, newest = connection.execute(
                select(func.count(), func.max(tracked_topics.c.updated_at))
            ).one()
        return int(count), float(newest or 0.0)

    def save(self, topic: TopicRow, by: str, replaces: str | None = None, limit: int = 50) -> None:
        """Add `topic`, or replace the one named `replaces`; at most `limit` topics."""
        name, keywords, hashtags = topic
        row = {
            "name": name,
            "keywords": json.dumps(list(keywords)),
            "hashtags": json.dumps(list(hashtags)),
            "updated_by": by[:200],
            "updated_at": time.time(),
        }
        with self.store.engine.begin() as connection:
            names = {
                name.lower(): name
                for name in connection.execute(select(tracked_topics.c.name)).scalars()
            }
            old = names.get(replaces.lower()) if replaces else None
            clash = names.get(name.lower())
            if clash is not None and clash != old:
                raise TrackedTopicConflict(f"a tracked topic named {clash!r} exists already")
            if old is None and len(names) >= limit:
                raise TrackedTopicConflict(f"at most {limit} tracked topics; remove one first")
            if old is not None:
                connection.execute(delete(tracked_topics).where(tracked_topics.c.name == old))
            connection.execute(tracked_topics.insert().values(**row))

    def remove(self, name: str) -> bool:
        """Stop tracking `name`; False when there was no such topic."""
        with self.store.engine.begin() as connection:
            gone = connection.execute(
                delete(tracked_topics).where(func.lower(tracked_topics.c.name) == name.lower())
            )
        return bool(gone.rowcount)
