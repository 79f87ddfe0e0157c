"""Corrections of a post's sentiment label or topic, for the Explore page and the JSON API.

Both write through here: the archive call runs off gevent's loop, and an archive that is
off or unavailable is `ArchiveUnavailable` (503), like Explore's reads.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from app.explore import database_errors, keeper
from app.services import services
from archive.correction_store import CorrectionStore
from archive.schema import corrections
from models.corrections import MAX_TOPIC_CHARS, Correction

MAX_POST_ID_CHARS = 200
MAX_VALUE_CHARS = 4 * MAX_TOPIC_CHARS  # longer input is refused before any work
MAX_TOPIC_CHOICES = 300  # topic names offered when correcting (live clusters, names used)


def save(post_id: str, field: str, value: str, by: str) -> Correction:
    """Store a correction (`value` "" takes it back).

    Raises:
        CorrectionError, UnknownPost: the correction or the post id is wrong.
        ArchiveUnavailable: the archive is off or cannot be reached; nothing was saved.
    """
    archive = keeper()
    store = CorrectionStore(archive.store)
    with database_errors():
        return archive.call(store.save, post_id, field, value, by)


def of_posts(post_ids: list[str]) -> dict[str, dict[str, dict[str, Any]]]:
    """The corrections of these posts as the page shows them (post id → field → fields)."""
    archive = keeper()
    store = CorrectionStore(archive.store)
    with database_errors():
        found = archive.call(store.for_posts, post_ids)
    return {
        post_id: {field: shown(c) for field, c in fields.items()}
        for post_id, fields in found.items()
    }


def topic_choices() -> list[str]:
    """Names to offer for a topic: the live clusters' labels, then names people gave."""
    clusterer = services().pipeline.clusterer
    names = list(getattr(clusterer, "labels_", ()))
    archive = keeper()

    def used() -> list[str]:
        with archive.store.engine.connect() as connection:
            query = (
                select(corrections.c.value)
                .distinct()
                .where(corrections.c.field == "topic")
                .limit(MAX_TOPIC_CHOICES)
            )
            return list(connection.execute(query).scalars())

    with database_errors():
        names += archive.call(used)
    return sorted(dict.fromkeys(n[:MAX_TOPIC_CHARS] for n in names))[:MAX_TOPIC_CHOICES]


def shown(correction: Correction) -> dict[str, Any]:
    return {
        "value": correction.value,
        "model_value": correction.model_value,
        "by": correction.corrected_by,
        "at": correction.corrected_at,
        "revisions": correction.revisions,
    }
