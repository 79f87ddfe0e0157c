"""The tracked topics this node counts, kept in the archive and shared by every node."""

from __future__ import annotations

import logging
from typing import Any

from app.aggregates import LiveAggregates
from app.alerting import LiveAlerts
from archive.sink import ArchiveKeeper
from archive.tracked_store import TrackedTopicStore
from insights.tracked import MAX_TOPICS, TopicMatcher, TrackedTopic

log = logging.getLogger(__name__)
BACKFILL_POSTS = 200_000  # the most archived posts a new topic is counted in


class ArchiveUnavailable(RuntimeError):
    """The archive cannot be reached: nothing was read or saved."""


class LiveTrackedTopics:
    """Reads the tracked topics from the archive into the dashboard's counts, again
    whenever any node saved or removed one (`refresh`, polled).

    Args:
        keeper: the archive, where the topics are kept (its calls run off the event loop).
        aggregates: the dashboard counts that follow them.
        alerts: the detectors that watch them too, if any.
    """

    def __init__(
        self, keeper: ArchiveKeeper, aggregates: LiveAggregates, alerts: LiveAlerts | None = None
    ) -> None:
        self.keeper = keeper
        self.store = TrackedTopicStore(keeper.store)
        self.aggregates = aggregates
        self.alerts = alerts
        self.topics: list[TrackedTopic] = []
        self._version: tuple[int, float] | None = None

    def refresh(self) -> bool:
        """Follow the archive's topics; True when they changed."""
        version = self.call(self.store.version)
        if version == self._version:
            return False
        rows = self.call(self.store.topics)
        topics = [TrackedTopic(name, keywords, hashtags) for name, keywords, hashtags in rows]
        earlier: list = []
        since = self.aggregates.kept_since()
        if since is not None and {t.name for t in topics} - {t.name for t in self.topics}:
            # A new topic shows the dashboard's whole span at once, not only what comes next.
            earlier = self.call(self.keeper.store.posts_since, since, BACKFILL_POSTS)
        self.topics = topics
        matcher = TopicMatcher(topics)
        self.aggregates.track(matcher, earlier)
        if self.alerts is not None:
            self.alerts.track(matcher)
        self._version = version
        log.info("tracking %d topics", len(self.topics))
        return True

    def save(self, topic: TrackedTopic, by: str, replaces: str | None = None) -> None:
        """Add or replace a topic (raises TrackedTopicConflict on a name taken or too many)."""
        self.call(
            self.store.save, (topic.name, topic.keywords, topic.hashtags), by, replaces, MAX_TOPICS
        )
        self.refresh()

    def remove(self, name: str) -> bool:
        removed = self.call(self.store.remove, name)
        self.refresh()
        return removed

    def call(self, function, *args: Any) -> Any:
        """A database call, once the archive's schema is in place (raises otherwise)."""
        if not self.keeper.ensure_ready():
            raise ArchiveUnavailable(self.keeper.error or "the archive is unavailable")
        return self.keeper.call(function, *args)

    def get(self, name: str) -> TrackedTopic | None:
        return next((t for t in self.topics if t.name.lower() == name.lower()), None)

    def summaries(self) -> list[dict[str, Any]]:
        """Each topic with its live figures over the dashboard's kept windows."""
        live = {t["name"]: t for t in self.aggregates.tracked_state()["topics"]}
        return [
            {
                **topic.to_dict(),
                "posts": live.get(topic.name, {}).get("total", 0),
                "mean_sentiment": live.get(topic.name, {}).get("mean_sentiment"),
                "share_of_voice": live.get(topic.name, {}).get("share", 0.0),
            }
            for topic in self.topics
        ]
