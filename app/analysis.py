"""On-demand analysis shared by the form and the JSON API: validate, score, explain."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from app.coalescing import CoalescingScorer
from models.pipeline import ScoringPipeline
from streaming.records import InvalidPost, parse_post


class AnalysisError(ValueError):
    """Input of an analysis request that cannot be scored; `index` names the bad post, and
    `status` is the HTTP status that fits (413: over the request's work budget)."""

    def __init__(self, message: str, index: int | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.index = index
        self.status = status


def analyze(
    raw_posts: Sequence[Any],
    scorer: ScoringPipeline | CoalescingScorer,
    max_text_length: int,
    max_total_chars: int | None = None,
) -> list[dict[str, Any]]:
    """Score raw posts as one batch (without teaching the live models) and explain each.

    `max_total_chars` is the request's work budget: scoring costs time in proportion to the
    text, so a request holding more than that, all posts together, is refused unscored.
    """
    posts = []
    for index, raw in enumerate(raw_posts):
        if not isinstance(raw, Mapping):
            raise AnalysisError(f"post {index} must be a JSON object", index)
        try:
            posts.append(parse_post(raw, max_text_length=max_text_length, default_source="api"))
        except InvalidPost as exc:
            prefix = f"post {index}: " if len(raw_posts) > 1 else ""
            raise AnalysisError(prefix + exc.message, index) from exc
    total = sum(len(p.text) for p in posts)
    if max_total_chars is not None and total > max_total_chars:
        raise AnalysisError(
            f"the posts hold {total} characters of text; one request may hold at most "
            f"{max_total_chars} (send fewer or shorter posts per request)",
            status=413,
        )
    results = []
    for scored, explanation in scorer.score_and_explain(posts):
        record = scored.to_dict()
        record["explanation"] = explanation.to_dict()
        results.append(record)
    return results
