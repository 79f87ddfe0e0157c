"""The audience of one instance: author profiles kept from the stream, the segmentation that
serves, refits on a schedule, and answers to "which segment is this author or post in".

A refit that fails (too few authors, an error, a store that cannot be written) leaves the
segmentation serving as it was and says why in `error`.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from app.config import Config
from insights.audiences import Segmentation, fit_segmentation, profile_of_posts
from insights.profiles import DAY, AuthorProfiles, archive_batches
from insights.segment_store import SegmentStore
from insights.segments import FeatureWeights, SegmentationError, SegmentParams
from models.pipeline import ScoringPipeline
from models.tracking import log_to_mlflow
from streaming.records import InvalidPost, ScoredPost, parse_post

log = logging.getLogger(__name__)

MAX_HANDLE = 200
REBUILD_POSTS = 2_000_000  # the most archived posts read to rebuild profiles at start
# What bare texts cannot tell: when their author posts (they are stamped "now") and their
# followers. Those columns say nothing when texts are assigned.
UNKNOWN_FROM_TEXTS = ("posts_per_day", "hours:", "weekend", "followers")


class AudienceInputError(ValueError):
    """An assign request that cannot be answered; `status` is the HTTP status that fits."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def segment_params(config: Config) -> SegmentParams:
    return SegmentParams(
        min_posts=config.audience_min_posts,
        k=config.audience_k,
        k_max=config.audience_k_max,
        weights=FeatureWeights.parse(config.audience_weights),
        seed=config.seed,
    )


class AudienceService:
    """Profiles, the serving segmentation and its refits.

    Args:
        config: the instance's settings (`audience_*`).
        store: where refits are versioned (None: kept in memory only).
        pipeline: returns the scoring pipeline of the moment (scores assign texts).
    """

    def __init__(
        self,
        config: Config,
        store: SegmentStore | None,
        pipeline: Callable[[], ScoringPipeline],
    ) -> None:
        self.config = config
        self.store = store
        self.pipeline = pipeline
        self.params = segment_params(config)
        self.book = AuthorProfiles(config.audience_max_authors, config.audience_idle_days * DAY)
        self.segmentation: Segmentation | None = None
        self.error: str | None = None
        self.refitted_at: float | None = None
        self._refit_lock = threading.Lock()
        if store is not None:
            try:
                self.segmentation = store.load()
                self.refitted_at = self.segmentation.created_at
            except Exception as exc:  # none yet, or refused: the first refit makes one
                log.info("no segmentation to serve yet: %s", exc)

    # -- the stream -----------------------------------------------------------------------
    def observe(self, batch: Sequence[ScoredPost]) -> None:
        """Fold a batch of scored posts into the profiles."""
        self.book.update(batch)

    def rebuild(self, archive: Any) -> int:
        """Profiles again from the archive's posts of the last `audience_idle_days`."""
        since = time.time() - self.config.audience_idle_days * DAY
        if self.config.audience_idle_days <= 0:
            since = 0.0
        return self.book.rebuild(archive_batches(archive, since, limit=REBUILD_POSTS))

    def refit(self, save: bool = True) -> Segmentation:
        """Fit the segments again (ids follow the serving ones) and serve the result.

        Raises:
            SegmentationError: too few authors; the old segmentation keeps serving.
            Exception: anything else that failed; the old segmentation keeps serving.
        """
        with self._refit_lock:
            try:
                self.book.age_out()
                fitted = fit_segmentation(
                    self.book,
                    self.params,
                    previous=self.segmentation,
                    min_rec_posts=self.config.audience_min_rec_posts,
                )
                if save and self.store is not None:
                    folder = self.store.save(fitted)
                    if self.config.mlflow_tracking_uri:  # as training runs are (never fails)
                        log_to_mlflow(
                            self.store.manifest(fitted.version),
                            folder,
                            self.config.mlflow_tracking_uri,
                            self.config.mlflow_experiment,
                        )
            except Exception as exc:
                self.error = f"refit failed: {exc}"
                log.warning("audience %s; the previous segmentation keeps serving", self.error)
                raise
            self.segmentation = fitted
            self.error = None
            self.refitted_at = time.time()
            log.info(
                "audience segments refitted: %d segments over %d authors",
                len(fitted.segments),
                len(fitted.labels),
            )
            return fitted

    def run(
        self,
        stop: threading.Event,
        archive: Any = None,
        offload: Callable[..., Any] = lambda function, *args: function(*args),
    ) -> None:
        """Rebuild from the archive (when there is one), then refit every interval;
        `offload` runs the heavy work off the server's event loop."""
        if archive is not None:
            try:
                count = offload(self.rebuild, archive)
                log.info("author profiles rebuilt from %d archived posts", count)
            except Exception as exc:
                log.warning("author profiles start empty: cannot read the archive: %s", exc)
        interval = self.config.audience_refit_interval
        check = self.config.model_check_interval
        next_refit = time.monotonic() + interval if interval > 0 else math.inf
        while not stop.wait(min(check, interval) if interval > 0 else check):
            try:
                if time.monotonic() >= next_refit:
                    next_refit = time.monotonic() + interval
                    offload(self.refit)
                else:
                    offload(self.follow)
            except Exception:  # said in `error` or logged; what serves keeps serving
                continue

    def follow(self) -> bool:
        """Serve a newer saved version (another node's or the command's refit), if any."""
        if self.store is None:
            return False
        versions = self.store.versions()
        serving = self.segmentation.version if self.segmentation is not None else ""
        if not versions or versions[-1] <= serving:
            return False
        try:
            newer = self.store.load(versions[-1])
        except Exception as exc:
            log.warning("segmentation %s refused: %s", versions[-1], exc)
            return False
        with self._refit_lock:
            self.segmentation = newer
            self.refitted_at = newer.created_at
        log.info("serving segmentation %s", newer.version)
        return True

    # -- answers --------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        segmentation = self.segmentation
        return {
            "authors_profiled": len(self.book),
            "posts_profiled": self.book.posts_seen,
            "max_authors": self.book.max_authors,
            "version": segmentation.version if segmentation else None,
            "refitted_at": self.refitted_at,
            "error": self.error,
        }

    def summary(self) -> dict[str, Any]:
        """What the dashboard shows: segment names and sizes, and the state."""
        segmentation = self.segmentation
        return {
            **self.status(),
            "segments": segmentation.summary()["segments"] if segmentation else [],
        }

    def _serving(self) -> Segmentation:
        if self.segmentation is None:
            raise AudienceInputError(
                "no audience segments yet: "
                + (self.error or "they are fitted once enough authors have posted")
                + "; run `socialpulse audiences fit` or wait for the next refit",
                status=409,
            )
        return self.segmentation

    def assign_handle(self, handle: str) -> dict[str, Any]:
        segmentation = self._serving()
        if not handle.strip() or len(handle) > MAX_HANDLE:
            raise AudienceInputError(f"'handle' must be 1 to {MAX_HANDLE} characters")
        handle = handle.strip().lstrip("@")
        profile = self.book.get(handle)
        if profile is None:
            raise AudienceInputError(
                f"no author {handle!r} has been seen (handles are case-sensitive); "
                "send post texts instead",
                status=404,
            )
        answer = segmentation.assign(profile)
        answer["input"] = {"handle": handle, **profile.to_dict(self.book.topic_labels)}
        answer["fitted_segment"] = segmentation.labels.get(handle)
        answer["content"] = segmentation.content(answer["segment"], self.book)
        return answer

    def assign_texts(self, texts: Sequence[Any]) -> dict[str, Any]:
        segmentation = self._serving()
        config = self.config
        if not isinstance(texts, list) or not texts:
            raise AudienceInputError("'texts' must be a non-empty list of strings")
        if len(texts) > config.audience_max_texts:
            raise AudienceInputError(f"at most {config.audience_max_texts} texts per request")
        now = datetime.now(UTC)
        posts = []
        for index, text in enumerate(texts):
            if not isinstance(text, str):
                raise AudienceInputError(f"text {index} must be a string")
            try:
                posts.append(
                    parse_post(
                        {"id": f"assign-{index}", "text": text, "author": "assign"},
                        max_text_length=config.max_text_length,
                        now=now,
                    )
                )
            except InvalidPost as exc:
                raise AudienceInputError(f"text {index}: {exc.message}") from exc
        total = sum(len(p.text) for p in posts)
        if total > config.api_max_chars:
            raise AudienceInputError(
                f"the texts hold {total} characters; one request may hold at most "
                f"{config.api_max_chars}",
                status=413,
            )
        scored = self.pipeline().score_batch(posts)
        answer = segmentation.assign(profile_of_posts(scored), unknown=UNKNOWN_FROM_TEXTS)
        answer["input"] = {
            "texts": len(posts),
            "topics": sorted({s.cluster.label for s in scored}),
        }
        answer["content"] = segmentation.content(answer["segment"], self.book)
        return answer


__all__ = ["AudienceInputError", "AudienceService", "SegmentationError", "segment_params"]
