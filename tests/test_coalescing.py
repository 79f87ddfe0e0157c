"""Concurrent requests scored as one batch: each gets its own results, as if scored alone."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import gevent
import pytest
import requests

from app.coalescing import CoalescingScorer
from app.testing import running_server
from streaming.records import parse_post

TIMINGS = {"scored_at": 0, "latency_ms": 0, "received_at": 0}


class CountingPipeline:
    """The real pipeline, recording the size of every batch; posts saying "boom" fail."""

    def __init__(self, pipeline) -> None:
        self.pipeline = pipeline
        self.batches: list[int] = []

    def score_and_explain(self, posts):
        self.batches.append(len(posts))
        if any("boom" in post.text for post in posts):
            raise ValueError("boom")
        return self.pipeline.score_and_explain(posts)


def _requests(count: int, posts_each: int = 1):
    return [
        [
            parse_post({"text": f"request {r} post {p}: what a game! #nba"})
            for p in range(posts_each)
        ]
        for r in range(count)
    ]


def _plain(results):
    return [(scored.to_dict() | TIMINGS, explanation) for scored, explanation in results]


def _concurrently(scorer: CoalescingScorer, requests_posts):
    greenlets = [gevent.spawn(scorer.score_and_explain, posts) for posts in requests_posts]
    gevent.joinall(greenlets, timeout=30)
    return greenlets


def test_requests_waiting_together_are_scored_as_one_batch_each_with_its_own_results(pipeline):
    counting = CountingPipeline(pipeline)
    scorer = CoalescingScorer(lambda: counting, max_posts=100, max_chars=100_000, coalesce=True)
    waiting = _requests(6, posts_each=2)
    greenlets = _concurrently(scorer, waiting)
    assert counting.batches == [12]
    for posts, greenlet in zip(waiting, greenlets, strict=True):
        assert _plain(greenlet.value) == _plain(pipeline.score_and_explain(posts))
        assert [scored.post.text for scored, _ in greenlet.value] == [p.text for p in posts]


def test_a_batch_is_no_larger_than_one_request_may_be_and_requests_are_never_split(pipeline):
    counting = CountingPipeline(pipeline)
    scorer = CoalescingScorer(lambda: counting, max_posts=5, max_chars=100_000, coalesce=True)
    greenlets = _concurrently(scorer, _requests(4, posts_each=2) + _requests(1, posts_each=7))
    assert counting.batches == [4, 4, 7]
    assert all(g.successful() for g in greenlets)

    by_chars = CountingPipeline(pipeline)
    scorer = CoalescingScorer(lambda: by_chars, max_posts=100, max_chars=80, coalesce=True)
    _concurrently(scorer, _requests(5))  # each post is 33 characters long
    assert by_chars.batches == [2, 2, 1]


def test_a_request_whose_posts_fail_fails_alone(pipeline):
    counting = CountingPipeline(pipeline)
    scorer = CoalescingScorer(lambda: counting, max_posts=100, max_chars=100_000, coalesce=True)
    waiting = _requests(3)
    waiting[1] = [parse_post({"text": "boom"})]
    greenlets = _concurrently(scorer, waiting)
    assert counting.batches == [3, 1, 1, 1]  # together, then each alone
    assert isinstance(greenlets[1].exception, ValueError)
    for index in (0, 2):
        assert _plain(greenlets[index].value) == _plain(pipeline.score_and_explain(waiting[index]))

    lone = CoalescingScorer(lambda: counting, max_posts=100, max_chars=100_000, coalesce=True)
    with pytest.raises(ValueError, match="boom"):
        lone.score_and_explain(waiting[1])


def test_a_lone_request_and_a_later_one_are_each_answered(pipeline):
    scorer = CoalescingScorer(lambda: pipeline, max_posts=100, max_chars=100_000, coalesce=True)
    first, second = _requests(2)
    assert _plain(scorer.score_and_explain(first)) == _plain(pipeline.score_and_explain(first))
    assert _plain(scorer.score_and_explain(second)) == _plain(pipeline.score_and_explain(second))


def test_without_gevent_each_call_is_scored_directly(pipeline):
    counting = CountingPipeline(pipeline)
    scorer = CoalescingScorer(lambda: counting, max_posts=100, max_chars=100_000)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(scorer.score_and_explain, _requests(4)))
    assert counting.batches == [1, 1, 1, 1]
    assert all(len(result) == 1 for result in results)


@pytest.mark.slow
def test_concurrent_api_requests_on_the_server_each_get_their_own_analysis(model_dir, tmp_path):
    texts = [
        f"Post {n}: " + ("awful, broken, refund now" if n % 2 else "love it!!! #nba")
        for n in range(40)
    ]
    with running_server(model_dir, tmp_path) as live:

        def analyze(text: str) -> dict:
            response = requests.post(live.url + "/api/v1/analyze", json={"text": text}, timeout=30)
            response.raise_for_status()
            return response.json()

        with ThreadPoolExecutor(20) as pool:
            together = list(pool.map(analyze, texts))
        alone = [analyze(text) for text in texts]
    differs = ("created_at", "scored_at", "latency_ms", "received_at", "id")
    for text, mixed, single in zip(texts, together, alone, strict=True):
        assert mixed["text"] == text
        assert {k: v for k, v in mixed.items() if k not in differs} == {
            k: v for k, v in single.items() if k not in differs
        }
