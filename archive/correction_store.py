"""Corrections kept in the archive: one row per post and field, the last correction wins.

A correction copies the post's text (and what the clusterer reads of it), so it stays a
training example after the post itself has passed the archive's retention.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence

from sqlalchemy import delete, func, select

from archive.schema import corrections, posts
from archive.store import ArchiveStore, clean_text, scored_from_row
from models.clustering import topic_document
from models.corrections import Correction, CorrectionSet, clean_value

KEY = ("post_id", "field")
MAX_LIST = 500  # the most post ids one `for_posts` call looks up


class UnknownPost(LookupError):
    """No archived post has this id."""


class CorrectionStore:
    """Reads and writes corrections in the archive."""

    def __init__(self, store: ArchiveStore) -> None:
        self.store = store

    def save(
        self, post_id: str, field: str, value: str, by: str, now: float | None = None
    ) -> Correction:
        """Correct `field` of the archived post `post_id` to `value` (`by`: who); an empty
        value takes the post's correction of `field` back.

        Raises:
            CorrectionError: an unknown field or a value that cannot be stored.
            UnknownPost: no archived post has this id.
        """
        now = time.time() if now is None else now
        cleaned = clean_value(field, value, allow_empty=True)
        key = (corrections.c.post_id == post_id) & (corrections.c.field == field)
        with self.store.engine.begin() as connection:
            row = connection.execute(select(posts).where(posts.c.id == post_id)).first()
            if row is None:
                raise UnknownPost(f"no archived post has the id {post_id[:200]!r}")
            scored = scored_from_row(row)
            model_value = (
                scored.sentiment.calibrated_label or scored.sentiment.label
                if field == "sentiment"
                else scored.cluster.label
            )
            correction = Correction(
                post_id=row.id,
                field=field,
                value=cleaned,
                text=row.text,
                document=clean_text(topic_document(scored.post)),
                model_value=clean_text(model_value),
                corrected_by=clean_text(by)[:200],
                corrected_at=now,
            )
            if not cleaned:
                connection.execute(delete(corrections).where(key))
                return correction
            # An upsert, so two people correcting the same post at once both succeed, the
            # later one kept.
            row = dataclasses.asdict(correction)
            upsert = self._insert(corrections).values(**row)
            changed = {k: upsert.excluded[k] for k in row if k not in KEY}
            connection.execute(
                upsert.on_conflict_do_update(
                    index_elements=[corrections.c.post_id, corrections.c.field],
                    set_={**changed, "revisions": corrections.c.revisions + 1},
                )
            )
            revisions = connection.execute(select(corrections.c.revisions).where(key)).scalar()
        return dataclasses.replace(correction, revisions=int(revisions or 1))

    def _insert(self, table):
        if self.store.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        return insert(table)

    def for_posts(self, post_ids: Sequence[str]) -> dict[str, dict[str, Correction]]:
        """The corrections of these posts: post id → field → correction."""
        found: dict[str, dict[str, Correction]] = {}
        if not post_ids:
            return found
        with self.store.engine.connect() as connection:
            rows = connection.execute(
                select(corrections).where(corrections.c.post_id.in_(list(post_ids)[:MAX_LIST]))
            )
            for row in rows:
                found.setdefault(row.post_id, {})[row.field] = _correction(row)
        return found

    def all(self) -> CorrectionSet:
        """Every correction, oldest first (what `train` and `evaluate` read)."""
        with self.store.engine.connect() as connection:
            rows = connection.execute(
                select(corrections).order_by(corrections.c.corrected_at, corrections.c.post_id)
            )
            return CorrectionSet(tuple(_correction(row) for row in rows))

    def count(self) -> int:
        with self.store.engine.connect() as connection:
            return int(connection.execute(select(func.count()).select_from(corrections)).scalar())


def _correction(row) -> Correction:
    return Correction(**row._mapping)
