"""On-demand scoring for concurrent requests: the posts of every form and API request waiting
at the same moment are scored as one batch.

Scoring one post alone costs several times its share of a batch (each step's fixed cost per
call: the sparse matrices, the forest walk, the explanations). Under load, dozens of requests
wait for their turn on the web node's one event loop; scoring them together is what lets it
keep up. A lone request waits only for the loop's next turn.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import gevent
from gevent.event import AsyncResult

from app.server import gevent_active
from models.pipeline import Explanation, ScoringPipeline
from streaming.records import Post, ScoredPost

Scored = list[tuple[ScoredPost, Explanation]]


class CoalescingScorer:
    """`score_and_explain` for requests, batched across the requests waiting together.

    Under gevent, a request queues its posts and waits; one greenlet, started by the first
    request of a turn of the loop, scores everything queued by then (up to a bound, so the
    loop is never held long) and hands each request its own results. Without
    gevent (threads, tests), each call scores its posts directly.

    Args:
        pipeline: returns the pipeline to score with (it changes when a model version does).
        max_posts, max_chars: the most one batch holds (the largest request allowed, so a
            batch holds the loop no longer than one request may); requests are never split.
        coalesce: batch across requests; None decides per call (only under gevent).
    """

    def __init__(
        self,
        pipeline: Callable[[], ScoringPipeline],
        max_posts: int,
        max_chars: int,
        coalesce: bool | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.max_posts = max_posts
        self.max_chars = max_chars
        self.coalesce = coalesce
        self._waiting: list[tuple[Sequence[Post], AsyncResult]] = []
        self._flush_started = False

    def score_and_explain(self, posts: Sequence[Post]) -> Scored:
        coalesce = gevent_active() if self.coalesce is None else self.coalesce
        if not coalesce:
            return self.pipeline().score_and_explain(posts)
        result = AsyncResult()
        self._waiting.append((posts, result))
        if not self._flush_started:
            self._flush_started = True
            # Starts once the greenlets already runnable this turn have queued their posts.
            gevent.spawn(self._flush)
        return result.get()

    def _flush(self) -> None:
        taken = posts = chars = 0
        for waiting, _ in self._waiting:
            posts += len(waiting)
            chars += sum(len(post.text) for post in waiting)
            if taken and (posts > self.max_posts or chars > self.max_chars):
                break
            taken += 1
        batch, self._waiting = self._waiting[:taken], self._waiting[taken:]
        if self._waiting:
            gevent.spawn(self._flush)  # the rest after the loop's next turn
        else:
            self._flush_started = False
        self._score(batch)

    def _score(self, batch: list[tuple[Sequence[Post], AsyncResult]]) -> None:
        pipeline = self.pipeline()
        try:
            scored = pipeline.score_and_explain([post for posts, _ in batch for post in posts])
        except Exception as exc:
            if len(batch) == 1:
                batch[0][1].set_exception(exc)
                return
            # One request's posts failed the batch: score each alone, so only it fails.
            for posts, result in batch:
                try:
                    result.set(pipeline.score_and_explain(posts))
                except Exception as alone:
                    result.set_exception(alone)
            return
        start = 0
        for posts, result in batch:
            result.set(scored[start : start + len(posts)])
            start += len(posts)
