"""The one scoring path, `ScoringPipeline.score_batch(posts)`: stream, form, API and replay."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from models.calibrated_sentiment import VaderFallbackSentimentModel
from models.clustering import ClusterState, StreamingTopicClusterer
from models.engagement import EngagementModel
from models.features import FEATURE_NAMES
from models.featurize import featurize
from models.sentiment import SentimentDriver, VaderSentimentModel
from streaming.records import ClusterAssignment, Post, ScoredPost


@dataclass(frozen=True)
class FeatureContribution:
    """How much one feature moved the predicted log(1 + engagement) away from the average."""

    feature: str
    value: float
    contribution: float


@dataclass(frozen=True)
class Explanation:
    """Why a post scored as it did."""

    sentiment_drivers: list[SentimentDriver]
    cluster_terms: list[str]
    engagement_baseline: float  # average prediction (log scale) before any feature
    engagement_contributions: list[FeatureContribution]

    def to_dict(self) -> dict[str, Any]:
        """The same dict as `dataclasses.asdict`, built directly: it is five times faster,
        and every API answer carries one per post."""
        return {
            "sentiment_drivers": [
                {"token": d.token, "valence": d.valence} for d in self.sentiment_drivers
            ],
            "cluster_terms": list(self.cluster_terms),
            "engagement_baseline": self.engagement_baseline,
            "engagement_contributions": [
                {"feature": c.feature, "value": c.value, "contribution": c.contribution}
                for c in self.engagement_contributions
            ],
        }


class ScoringPipeline:
    """Sentiment, topic cluster and predicted engagement for micro-batches of posts.

    Args:
        clusterer: fitted topic clusterer; it keeps learning from live batches.
        engagement: fitted engagement model.
        model_version: version of the artifacts, stamped on every scored post.
        sentiment: the sentiment model (default: VADER, its label as the calibrated one).
    """

    def __init__(
        self,
        clusterer: StreamingTopicClusterer,
        engagement: EngagementModel,
        model_version: str,
        sentiment: VaderSentimentModel | None = None,
    ) -> None:
        self.clusterer = clusterer
        self.engagement = engagement
        self.model_version = model_version
        self.sentiment = sentiment or VaderFallbackSentimentModel()
        # Online learning mutates the clusterer; one learner at a time.
        self._learn_lock = threading.Lock()
        self._assignments: tuple[ClusterState, dict[int, ClusterAssignment]] | None = None

    def score_batch(
        self,
        posts: Sequence[Post],
        learn: bool = False,
        received_at: Sequence[float] | None = None,
    ) -> list[ScoredPost]:
        """Score posts together; with `learn`, the clusterer also learns from them.

        Args:
            posts: the micro-batch.
            learn: let the topic clusterer learn from these posts (the live stream does; a
                one-off analysis does not).
            received_at: wall time each post entered SocialPulse (default: now), kept on
                the scored post to measure end-to-end latency.
        """
        return self._score(posts, learn, received_at)[0]

    def score_and_explain(
        self, posts: Sequence[Post], top: int = 6
    ) -> list[tuple[ScoredPost, Explanation]]:
        """`score_batch` without learning, each post with its explanation; the features are
        computed once for both (what the form and the API answer)."""
        scored, matrix, contributions = self._score(posts, learn=False, explain=True)
        explanations = self._explanations(scored, matrix, top, contributions)
        return list(zip(scored, explanations, strict=True))

    def _score(
        self,
        posts: Sequence[Post],
        learn: bool = False,
        received_at: Sequence[float] | None = None,
        explain: bool = False,
    ) -> tuple[list[ScoredPost], np.ndarray, tuple[np.ndarray, np.ndarray] | None]:
        """Scored posts, their feature rows and, with `explain`, the engagement model's
        bias and feature contributions (from the same walk down the trees)."""
        if not posts:
            return [], np.empty((0, len(FEATURE_NAMES))), None
        started = time.perf_counter()
        features = featurize(
            posts,
            self.clusterer,
            self.engagement.author_prior_,
            sentiment_model=self.sentiment,
            learn=learn,
            learn_lock=self._learn_lock,
        )
        contributions = None
        if explain:
            engagements, bias, by_feature = self.engagement.predict_and_contributions(
                features.matrix
            )
            contributions = (bias, by_feature)
        else:
            engagements = self.engagement.predict(features.matrix)
        assignments = self._assignments_of(features.cluster_state)
        done = time.time()
        latency_ms = round((time.perf_counter() - started) * 1000.0, 3)
        if received_at is None:
            received_at = [done] * len(posts)
        version = self.model_version
        # Positional arguments, in field order: a frozen record's keywords cost a third more.
        scored = [
            ScoredPost(
                post, sentiment, assignments[cid], engagement, version, latency_ms, done, received
            )
            for post, sentiment, cid, engagement, received in zip(
                posts,
                features.sentiments,
                features.cluster_ids.tolist(),
                engagements,
                received_at,
                strict=True,
            )
        ]
        return scored, features.matrix, contributions

    def _assignments_of(self, state: ClusterState) -> dict[int, ClusterAssignment]:
        """Every cluster's assignment record, built once per clusterer state: a state is
        replaced, never changed, and one request would otherwise build them all again."""
        cached = self._assignments
        if cached is None or cached[0] is not state:
            records = {
                cid: ClusterAssignment(cid, label)
                for cid, label in zip(state.cluster_ids, state.labels, strict=True)
            }
            cached = self._assignments = (state, records)
        return cached[1]

    def with_version(self, model_version: str) -> ScoringPipeline:
        """The same models under another version name (after they were saved as it)."""
        return ScoringPipeline(self.clusterer, self.engagement, model_version, self.sentiment)

    def explain(self, scored: ScoredPost, top: int = 6) -> Explanation:
        """The words, cluster terms and features behind a post this pipeline scored."""
        matrix = featurize(
            [scored.post],
            self.clusterer,
            self.engagement.author_prior_,
            sentiments=[scored.sentiment],
            cluster_ids=[scored.cluster.id],
        ).matrix
        return self._explanations([scored], matrix, top)[0]

    def _explanations(
        self,
        scored: Sequence[ScoredPost],
        matrix: np.ndarray,
        top: int,
        contributions: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> list[Explanation]:
        baselines, by_feature = contributions or self.engagement.contributions(matrix)
        explanations = []
        for post, baseline, values, row in zip(
            scored, baselines.tolist(), matrix.tolist(), by_feature.tolist(), strict=True
        ):
            order = sorted(range(len(FEATURE_NAMES)), key=lambda i: -abs(row[i]))
            explanations.append(
                Explanation(
                    sentiment_drivers=self.sentiment.drivers(post.post.text),
                    cluster_terms=self.clusterer.top_terms(post.cluster.id),
                    engagement_baseline=round(baseline, 4),
                    engagement_contributions=[
                        FeatureContribution(FEATURE_NAMES[i], round(values[i], 4), round(row[i], 4))
                        for i in order[:top]
                    ],
                )
            )
        return explanations
