"""models.vader gives the vaderSentiment library's exact scores, in linear time."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from vaderSentiment.vaderSentiment import (
    BOOSTER_DICT,
    NEGATE,
    SPECIAL_CASES,
    SentimentIntensityAnalyzer,
)

from models.vader import Vader

LIBRARY = SentimentIntensityAnalyzer()
FAST = Vader(LIBRARY)


def assert_same(text: str) -> None:
    """Same keys, same values, down to the sign of a zero."""
    expected = LIBRARY.polarity_scores(text)
    got = FAST.polarity_scores(text)
    assert {k: repr(v) for k, v in got.items()} == {k: repr(v) for k, v in expected.items()}, text


def shared_texts(folder: Path) -> list[str]:
    """The text of every post of every data set in `folder`."""
    texts = []
    for path in sorted(folder.rglob("*.jsonl")):
        with path.open(encoding="utf-8") as lines:
            texts += [json.loads(line)["text"] for line in lines if line.strip()]
    for path in sorted(folder.rglob("*.csv")):
        raw = path.read_bytes()
        try:
            content = raw.decode("utf-8")
        except UnicodeDecodeError:  # the FiveThirtyEight files are latin-1
            content = raw.decode("latin-1")
        texts += [row["text"] for row in csv.DictReader(content.splitlines(keepends=True))]
    return texts


def test_identical_on_every_text_of_the_shared_data(shared_data):
    texts = shared_texts(shared_data)
    assert len(texts) > 60000
    for text in texts:
        assert_same(text)


EDGE_TEXTS = [
    "",
    "   ",
    "😀",
    "a😀b",
    "😀😀 😀\n😀",
    "no good",
    "no no good",
    "not bad but not great either",
    "good but bad but good",
    "BUT great, but AWFUL",
    "kind of good",
    "KIND OF GOOD!!!",
    "at least good",
    "very least good",
    "least good",
    "never so good",
    "never this bad",
    "without a doubt good",
    "the shit",
    "bad ass",
    "yeah right good",
    "i am SO VERY HAPPY but sad??",
    "isn't it great? really?!?!",
    ":) :( :D <3 </3",
    "ΟΔΟΣ good",
    "İstanbul great",
    "good " * 50 + "but " + "bad " * 50,
    "good bad " * 40 + "but" + " good bad" * 40,
]


@pytest.mark.parametrize("text", EDGE_TEXTS)
def test_identical_on_the_rules_edges(text):
    assert_same(text)


RULE_WORDS = sorted(
    {"but", "BUT", "kind", "of", "no", "or", "nor", "least", "at", "very", "never", "so"}
    | {"this", "without", "doubt", "not", "isn't", "GOOD", "good", "bad", "Bad", "great"}
    | {"love", "hate", "the", "shit", "bomb", "ass", "sort", "yeah", "right", "!", "?!", ":)"}
    | {"😀", "😠", "🔥", "💔", "a😍b", "e\u0301", "...", "#good", "@bad", "GOOD!!!"}
)
EMOJI = sorted(k for k in LIBRARY.emojis if len(k) == 1)
# Everything VADER treats specially, and everything that has broken naive tokenisers.
adversarial_tokens = st.one_of(
    st.sampled_from(RULE_WORDS),
    st.sampled_from(sorted(BOOSTER_DICT)),
    st.sampled_from(NEGATE),
    st.sampled_from(sorted(SPECIAL_CASES)),
    st.sampled_from(sorted(LIBRARY.lexicon)),
    st.sampled_from(EMOJI),
    st.text(alphabet="!?.,;:'\"()-*#@", min_size=1, max_size=8),  # punctuation runs
    st.text(alphabet=st.characters(categories=("Mn", "Me")), min_size=1, max_size=6),
    st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=12),
)
separators = st.sampled_from([" ", "  ", "\n", "\t", "", "\u00a0", "\u3000"])


@st.composite
def adversarial_texts(draw) -> str:
    tokens = draw(st.lists(adversarial_tokens, max_size=60))
    return "".join(token + draw(separators) for token in tokens)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(adversarial_texts())
def test_identical_on_adversarial_text(text):
    assert_same(text)


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.characters(exclude_categories=("Cs",))))
def test_identical_on_any_unicode_text(text):
    assert_same(text)


def bytecodes_run(score: Callable[[str], object], text: str) -> int:
    """Python bytecode instructions executed to score `text`: a measure of work that does
    not depend on the machine's speed or load."""
    count = 0

    def trace(frame, event, arg):
        nonlocal count
        frame.f_trace_opcodes = True
        if event == "opcode":
            count += 1
        return trace

    sys.settrace(trace)
    try:
        score(text)
    finally:
        sys.settrace(None)
    return count


HOSTILE_REPEATS = {
    "emoji": "😀",
    "words": "good ",
    "shouting": "GOOD bad ",
    "buts": "good but ",
    "negations": "not never no ",
    "emoji against words": "love😀",
}


@pytest.mark.parametrize("unit", HOSTILE_REPEATS.values(), ids=HOSTILE_REPEATS.keys())
def test_work_grows_linearly_with_the_text(unit):
    small = bytecodes_run(FAST.scores, unit * 500)
    large = bytecodes_run(FAST.scores, unit * 2000)
    assert large <= 4.4 * small  # 4× the text, 4× the work (plus log-factor room)


def test_the_library_itself_is_quadratic_on_such_text():
    """What the test above guards against: the library's work grows with the square."""
    small = bytecodes_run(LIBRARY.polarity_scores, "😀" * 50)
    large = bytecodes_run(LIBRARY.polarity_scores, "😀" * 200)
    assert large > 8 * small
