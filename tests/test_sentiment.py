"""VADER sentiment: raw text reaches VADER untouched, labels, drivers, and any input scores."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from models.sentiment import (
    NEGATIVE_THRESHOLD,
    POSITIVE_THRESHOLD,
    VaderSentimentModel,
    sentiment_label,
)
from streaming.records import parse_post

# Texts where lowercasing, stripping or dropping emoji would change VADER's answer.
EMPHASIS_TEXTS = [
    "GREAT!!!",
    "great",
    "This is GREAT news",
    "This is great news",
    "The game 😍",
    "The game",
    "The game 😠",
    "  so   sad...  ",
    "Honestly AMAZING dunk from LeBron!!! 🔥🙌 #nba",
    "Not happy: the airline made the layover TERRIBLE 😤 https://sp.example/1 @gate_agent",
    "meh :(",
    "",
    "   ",
]

LEXICON_WORDS = ["great", "GREAT", "awful", "love", "hate", "not", "but", "very", "kind", "of"]
FILLER = ["the", "game", "!!!", "?", "😍", "😡", "🔥", ":(", "<3", "#nba", "@bob", "\n", "…"]


@pytest.fixture(scope="module")
def model() -> VaderSentimentModel:
    return VaderSentimentModel()


@pytest.fixture(scope="module")
def vader() -> SentimentIntensityAnalyzer:
    return SentimentIntensityAnalyzer()


def compound(model: VaderSentimentModel, text: str) -> float:
    return model.score_batch([text])[0].compound


def test_scores_equal_raw_vader_on_untouched_text(model, vader, sample_posts):
    texts = EMPHASIS_TEXTS + [p.text for p in sample_posts]
    scored = model.score_batch(texts)
    assert len(scored) == len(texts)
    for text, sentiment in zip(texts, scored, strict=True):
        raw = vader.polarity_scores(text)
        assert (sentiment.compound, sentiment.pos, sentiment.neu, sentiment.neg) == (
            raw["compound"],
            raw["pos"],
            raw["neu"],
            raw["neg"],
        ), text


def test_exclamation_marks_raise_the_score(model):
    assert compound(model, "GREAT!!!") > compound(model, "great") > 0


def test_capitals_matter(model):
    assert compound(model, "This is GREAT news") > compound(model, "This is great news") > 0
    assert compound(model, "This is AWFUL news") < compound(model, "This is awful news") < 0


def test_emoji_change_the_score(model):
    plain = compound(model, "The game")
    assert compound(model, "The game 😍") > plain
    assert compound(model, "The game 😠") < plain


def test_pipeline_scores_the_text_as_sent(pipeline, vader):
    text = "  Honestly AMAZING dunk!!! 😍  "
    scored = pipeline.score_batch([parse_post({"text": text})])[0]
    assert scored.post.text == text
    assert scored.sentiment.compound == vader.polarity_scores(text)["compound"]


@pytest.mark.parametrize(
    ("value", "label"),
    [
        (POSITIVE_THRESHOLD, "positive"),
        (0.0499999, "neutral"),
        (0.0, "neutral"),
        (-0.0499999, "neutral"),
        (NEGATIVE_THRESHOLD, "negative"),
        (1.0, "positive"),
        (-1.0, "negative"),
    ],
)
def test_label_thresholds_are_exactly_plus_minus_0_05(value, label):
    assert (POSITIVE_THRESHOLD, NEGATIVE_THRESHOLD) == (0.05, -0.05)
    assert sentiment_label(value) == label


def test_batch_labels_follow_the_compound(model, sample_posts):
    scored = model.score_batch([p.text for p in sample_posts])
    assert {s.label for s in scored} == {"positive", "neutral", "negative"}
    for sentiment in scored:
        assert sentiment.label == sentiment_label(sentiment.compound)


def test_drivers_are_lexicon_words_strongest_first(model, vader):
    drivers = model.drivers("The refs were HORRIBLE, but the dunk was good and the crowd happy")
    tokens = [d.token for d in drivers]
    assert tokens == ["happy", "HORRIBLE", "good"]  # valence 2.7, -2.5, 1.9
    for driver in drivers:
        assert driver.valence == round(vader.lexicon[driver.token.lower()], 3)


def test_drivers_include_emoji(model):
    drivers = {d.token: d.valence for d in model.drivers("Watching the game 😍 😠")}
    assert drivers["😍"] > 0
    assert drivers["😠"] < 0


def test_drivers_include_emoji_and_words_written_together(model):
    tokens = [d.token for d in model.drivers("I love😍 this")]
    assert "love" in tokens
    assert "😍" in tokens


def test_drivers_include_emoticons(model):
    # ":(" is what makes "meh :(" clearly negative in VADER; the explanation must show it.
    drivers = {d.token: d.valence for d in model.drivers("meh :(")}
    assert drivers.get(":(", 0) < 0
    assert [d.token for d in model.drivers("so sad <3")] == ["sad", "<3"]


@pytest.mark.parametrize("text", ["The meeting is scheduled for Tuesday", "", "   ", "#nba @bob"])
def test_drivers_empty_for_neutral_text(model, text):
    assert compound(model, text) == 0.0
    assert model.drivers(text) == []


def test_drivers_respect_the_limit(model):
    text = "great awful love hate happy sad good bad wonderful horrible"
    assert len(model.drivers(text, limit=3)) == 3
    assert len(model.drivers(text)) == 8


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet=st.characters(exclude_categories=("Cs",))))
def test_any_unicode_text_scores_without_raising(text):
    check_any_text(text)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(LEXICON_WORDS + FILLER), max_size=15).map(" ".join))
def test_any_mix_of_lexicon_words_scores_without_raising(text):
    check_any_text(text)


_MODEL = VaderSentimentModel()
_VADER = SentimentIntensityAnalyzer()


def check_any_text(text: str) -> None:
    (sentiment,) = _MODEL.score_batch([text])
    assert sentiment.compound == _VADER.polarity_scores(text)["compound"]
    assert -1.0 <= sentiment.compound <= 1.0
    assert sentiment.label == sentiment_label(sentiment.compound)
    drivers = _MODEL.drivers(text)
    strengths = [abs(d.valence) for d in drivers]
    assert strengths == sorted(strengths, reverse=True)
    for driver in drivers:
        assert driver.token and driver.token in text
        assert driver.valence != 0
