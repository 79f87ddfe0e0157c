"""VADER's scores, computed exactly as vaderSentiment 3.3.2 computes them, in linear time.

The library lowercases the whole token list again for every sentiment word it meets (in its
negation and idiom checks) and looks each score up by value in its "but" rule, so a text of
n tokens costs O(n²): one post of 5,000 emoji (10,000 words once translated) takes seconds.
This module makes the same decisions, in the same order and with the same floating-point
operations, on a token list lowercased once, so it returns the same numbers bit for bit, in
O(n log n) at worst and about three times faster on ordinary posts.

The library stays the reference: the lexicon, the emoji descriptions and every constant are
read from it, and tests compare the two on every text of the shared data sets and on
generated adversarial text.
"""

from __future__ import annotations

import heapq
import math
import string
from collections.abc import Mapping

from vaderSentiment import vaderSentiment as library

_PUNCTUATION = string.punctuation
_NEGATE = frozenset(library.NEGATE)
_BOOSTERS: Mapping[str, float] = library.BOOSTER_DICT
_SPECIAL_CASES: Mapping[str, float] = library.SPECIAL_CASES
_N_SCALAR = library.N_SCALAR
_C_INCR = library.C_INCR


class Vader:
    """`polarity_scores` with the library's results; built from the library's analyzer."""

    def __init__(self, analyzer: library.SentimentIntensityAnalyzer | None = None) -> None:
        analyzer = analyzer or library.SentimentIntensityAnalyzer()
        self.lexicon: dict[str, float] = analyzer.lexicon
        self.emojis: dict[str, str] = analyzer.emojis
        # The library reads a text one character at a time, so only one-character keys of
        # its emoji table can ever match. It puts a space before a description unless one is
        # there already; the text is then only split on whitespace and searched for "!" and
        # "?", so always adding the space gives the same words and the same counts.
        self._emoji_chars = frozenset(k for k in self.emojis if len(k) == 1)
        self._emoji_descriptions = {ord(k): " " + self.emojis[k] for k in self._emoji_chars}

    def polarity_scores(self, text: str) -> dict[str, float]:
        """The library's dict: neg, neu, pos (3 decimals) and compound (4 decimals)."""
        neg, neu, pos, compound = self.scores(text)
        return {"neg": neg, "neu": neu, "pos": pos, "compound": compound}

    def scores(self, text: str) -> tuple[float, float, float, float]:
        """(neg, neu, pos, compound) of `text`, rounded as the library rounds them."""
        return self.scores_and_words(text)[0]

    def scores_and_words(self, text: str) -> tuple[tuple[float, float, float, float], list[str]]:
        """`scores(text)` and the lowercased words VADER read (emoji as their descriptions,
        punctuation off the ends of words): a supervised text model reads the same words
        without tokenizing the text a second time."""
        if not self._emoji_chars.isdisjoint(text):
            text = text.translate(self._emoji_descriptions)
        text = text.strip()
        # The library's `_strip_punc_if_word`: punctuation off a word's ends, unless that
        # leaves two characters or fewer (an emoticon such as ":)" or ":D").
        words = [
            stripped if len(stripped := token.strip(_PUNCTUATION)) > 2 else token
            for token in text.split()
        ]
        lowered = [w.lower() for w in words]
        sentiments = self._valences(words, lowered)
        if "but" in lowered:
            _weigh_around_but(sentiments, lowered.index("but"))
        return _score_valence(sentiments, text), lowered

    def _valences(self, words: list[str], lowered: list[str]) -> list[float]:
        """The valence of every word: `polarity_scores`' loop and `sentiment_valence`."""
        lexicon = self.lexicon
        n = len(words)
        # Words outside the lexicon, boosters and the "kind" of "kind of" all score 0.
        sentiments: list[float] = [0] * n
        rated = [i for i, lower in enumerate(lowered) if lower in lexicon]
        if not rated:
            return sentiments
        some_caps = _some_but_not_all_caps(words)
        for i in rated:
            lower = lowered[i]
            if lower in _BOOSTERS or (i < n - 1 and lower == "kind" and lowered[i + 1] == "of"):
                continue
            valence = lexicon[lower]
            if lower == "no" and i != n - 1 and lowered[i + 1] in lexicon:
                valence = 0.0
            if (
                (i > 0 and lowered[i - 1] == "no")
                or (i > 1 and lowered[i - 2] == "no")
                or (i > 2 and lowered[i - 3] == "no" and lowered[i - 1] in ("or", "nor"))
            ):
                valence = lexicon[lower] * _N_SCALAR
            if some_caps and words[i].isupper():
                if valence > 0:
                    valence += _C_INCR
                else:
                    valence -= _C_INCR
            for start_i in range(3):
                j = i - (start_i + 1)
                if j >= 0 and lowered[j] not in lexicon:
                    s = _scalar_inc_dec(words[j], lowered[j], valence, some_caps)
                    if start_i == 1 and s != 0:
                        s = s * 0.95
                    if start_i == 2 and s != 0:
                        s = s * 0.9
                    valence = valence + s
                    valence = _negation_check(valence, lowered, start_i, i)
                    if start_i == 2:
                        valence = _special_idioms_check(valence, lowered, i)
            sentiments[i] = _least_check(valence, lowered, i, lexicon)
        return sentiments


def _some_but_not_all_caps(words: list[str]) -> bool:
    """The library's `allcap_differential`."""
    capitals = sum(map(str.isupper, words))
    return 0 < len(words) - capitals < len(words)


def _scalar_inc_dec(word: str, lower: str, valence: float, some_caps: bool) -> float:
    """The library's `scalar_inc_dec`, given the word lowercased."""
    scalar = 0.0
    if lower in _BOOSTERS:
        scalar = _BOOSTERS[lower]
        if valence < 0:
            scalar *= -1
        if word.isupper() and some_caps:
            if valence > 0:
                scalar += _C_INCR
            else:
                scalar -= _C_INCR
    return scalar


def _negated(lower: str) -> bool:
    """The library's `negated` for one lowercased word."""
    return lower in _NEGATE or "n't" in lower


def _negation_check(valence: float, lowered: list[str], start_i: int, i: int) -> float:
    """The library's `_negation_check` on the lowercased words."""
    if start_i == 0:
        if _negated(lowered[i - 1]):
            valence = valence * _N_SCALAR
    elif start_i == 1:
        if lowered[i - 2] == "never" and lowered[i - 1] in ("so", "this"):
            valence = valence * 1.25
        elif lowered[i - 2] == "without" and lowered[i - 1] == "doubt":
            pass
        elif _negated(lowered[i - 2]):
            valence = valence * _N_SCALAR
    else:
        # The library's condition, parenthesised as Python reads it: "so"/"this" just
        # before the word counts even without "never".
        if (lowered[i - 3] == "never" and lowered[i - 2] in ("so", "this")) or lowered[i - 1] in (
            "so",
            "this",
        ):
            valence = valence * 1.25
        elif lowered[i - 3] == "without" and "doubt" in (lowered[i - 2], lowered[i - 1]):
            pass
        elif _negated(lowered[i - 3]):
            valence = valence * _N_SCALAR
    return valence


def _special_idioms_check(valence: float, lowered: list[str], i: int) -> float:
    """The library's `_special_idioms_check` (only ever called with i ≥ 3)."""
    one_zero = f"{lowered[i - 1]} {lowered[i]}"
    two_one_zero = f"{lowered[i - 2]} {lowered[i - 1]} {lowered[i]}"
    two_one = f"{lowered[i - 2]} {lowered[i - 1]}"
    three_two_one = f"{lowered[i - 3]} {lowered[i - 2]} {lowered[i - 1]}"
    three_two = f"{lowered[i - 3]} {lowered[i - 2]}"
    for sequence in (one_zero, two_one_zero, two_one, three_two_one, three_two):
        if sequence in _SPECIAL_CASES:
            valence = _SPECIAL_CASES[sequence]
            break
    if len(lowered) - 1 > i:
        zero_one = f"{lowered[i]} {lowered[i + 1]}"
        if zero_one in _SPECIAL_CASES:
            valence = _SPECIAL_CASES[zero_one]
    if len(lowered) - 1 > i + 1:
        zero_one_two = f"{lowered[i]} {lowered[i + 1]} {lowered[i + 2]}"
        if zero_one_two in _SPECIAL_CASES:
            valence = _SPECIAL_CASES[zero_one_two]
    for n_gram in (three_two_one, three_two, two_one):
        if n_gram in _BOOSTERS:
            valence = valence + _BOOSTERS[n_gram]
    return valence


def _least_check(valence: float, lowered: list[str], i: int, lexicon: Mapping) -> float:
    """The library's `_least_check` on the lowercased words."""
    if i > 1 and lowered[i - 1] not in lexicon and lowered[i - 1] == "least":
        if lowered[i - 2] != "at" and lowered[i - 2] != "very":
            valence = valence * _N_SCALAR
    elif i > 0 and lowered[i - 1] not in lexicon and lowered[i - 1] == "least":
        valence = valence * _N_SCALAR
    return valence


def _weigh_around_but(sentiments: list[float], but_index: int) -> None:
    """The library's `_but_check`, in place, in O(n log n).

    The library walks the scores and, for each, rescales the *first* score equal to it
    (`list.index`): halved before the first "but", 1.5× after it. This replays exactly that,
    keeping for each value a heap of the positions holding it.
    """
    positions: dict[float, list[int]] = {}
    for index, value in enumerate(sentiments):
        positions.setdefault(value, []).append(index)  # ascending: already a heap
    for k in range(len(sentiments)):
        value = sentiments[k]
        heap = positions[value]
        first = heap[0]
        if first == but_index:
            continue
        scaled = value * (0.5 if first < but_index else 1.5)
        sentiments[first] = scaled
        if scaled != value:
            heapq.heappop(heap)
            if not heap:
                del positions[value]
            heapq.heappush(positions.setdefault(scaled, []), first)


def _score_valence(sentiments: list[float], text: str) -> tuple[float, float, float, float]:
    """The library's `score_valence`, as (neg, neu, pos, compound)."""
    if not sentiments:
        return 0.0, 0.0, 0.0, 0.0
    sum_s = float(sum(sentiments))
    amplifier = _punctuation_emphasis(text)
    if sum_s > 0:
        sum_s += amplifier
    elif sum_s < 0:
        sum_s -= amplifier
    compound = library.normalize(sum_s)
    pos_sum = 0.0
    neg_sum = 0.0
    neu_count = sentiments.count(0)
    for score in filter(None, sentiments):  # in order: the sums round as the library's do
        if score > 0:
            pos_sum += float(score) + 1
        else:
            neg_sum += float(score) - 1
    if pos_sum > math.fabs(neg_sum):
        pos_sum += amplifier
    elif pos_sum < math.fabs(neg_sum):
        neg_sum -= amplifier
    total = pos_sum + math.fabs(neg_sum) + neu_count
    return (
        round(math.fabs(neg_sum / total), 3),
        round(math.fabs(neu_count / total), 3),
        round(math.fabs(pos_sum / total), 3),
        round(compound, 4),
    )


def _punctuation_emphasis(text: str) -> float:
    """The library's `_amplify_ep` + `_amplify_qm`."""
    exclamations = min(text.count("!"), 4)
    questions = text.count("?")
    question_amplifier = 0
    if questions > 1:
        question_amplifier = questions * 0.18 if questions <= 3 else 0.96
    return exclamations * 0.292 + question_amplifier
