"""VADER sentiment on the raw text, batch-first."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

from models.vader import Vader
from streaming.records import Sentiment

POSITIVE_THRESHOLD = 0.05
NEGATIVE_THRESHOLD = -0.05
_STRIP = "\"'.,!?;:()[]{}<>*~_…“”‘’"


def sentiment_label(compound: float) -> str:
    """VADER's standard thresholds: ≥ 0.05 positive, ≤ -0.05 negative, else neutral."""
    if compound >= POSITIVE_THRESHOLD:
        return "positive"
    if compound <= NEGATIVE_THRESHOLD:
        return "negative"
    return "neutral"


@dataclass(frozen=True, slots=True)
class SentimentDriver:
    """A word (or emoji) of the text and its valence in VADER's lexicon."""

    token: str
    valence: float


@functools.cache
def _shared_vader() -> Vader:
    """One analyzer per process: building one reads VADER's lexicon files."""
    return Vader()


class VaderSentimentModel:
    """Scores texts exactly as VADER does: no lowercasing or stripping beforehand.

    Capitals, punctuation such as "!!!" and emoji carry VADER's signal, so the text reaches
    the analyzer untouched. Scoring runs through `models.vader`, which gives the
    vaderSentiment library's numbers in linear time.
    """

    def score_batch(self, texts: Sequence[str]) -> list[Sentiment]:
        scores = _shared_vader().scores
        results = []
        for text in texts:
            neg, neu, pos, compound = scores(text)
            results.append(Sentiment(compound, pos, neu, neg, sentiment_label(compound)))
        return results

    def drivers(self, text: str, limit: int = 8) -> list[SentimentDriver]:
        """Words and emoji of `text` that carry valence in VADER's lexicon, strongest first."""
        analyzer = _shared_vader()
        lexicon, emojis = analyzer.lexicon, analyzer.emojis
        found: dict[str, float] = {}
        for raw in text.split():
            # VADER reads emoji apart from the words they touch ("love😍" is "love" + 😍).
            words = []
            for char in raw:
                description = emojis.get(char)
                if description is None:
                    words.append(char)
                    continue
                words.append(" ")
                score = sum(lexicon.get(w, 0.0) for w in description.split())
                if score:
                    found.setdefault(char, score)
            for word in "".join(words).split():
                token = word.strip(_STRIP)
                valence = lexicon.get(token.lower()) if token else None
                if valence is None:  # emoticons such as ":(" are all punctuation
                    token, valence = word, lexicon.get(word.lower())
                if valence is not None:
                    found.setdefault(token, valence)
        ranked = sorted(found.items(), key=lambda kv: abs(kv[1]), reverse=True)
        return [SentimentDriver(token, round(valence, 3)) for token, valence in ranked[:limit]]
