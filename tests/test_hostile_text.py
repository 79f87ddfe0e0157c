"""Scoring work grows linearly with the text, whatever the text is made of.

Work is counted in Python bytecode instructions executed (`tests/test_vader.py`'s
`bytecodes_run`), not in seconds: the count does not depend on the machine or its load, so
the bound holds without a timed test. The regular expressions and vectorizers run in C on
top of that; their patterns are linear (no nested repetition).
"""

from __future__ import annotations

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from streaming.records import InvalidPost, parse_post
from tests.test_vader import EMOJI, bytecodes_run

# Pieces of text that have made analysers slow: emoji (VADER translates each into words),
# combining marks, one endless word, punctuation runs, capitals, negations and "but".
hostile_units = st.one_of(
    st.sampled_from(EMOJI),
    st.sampled_from(["e\u0301\u0302", "a" * 40, "!?", "!!!", "#", "#tag ", "@who ", "http://x.y/"]),
    st.sampled_from(["GOOD ", "not bad ", "but ", "kind of ", "no ", "😀love ", ":) ", "…"]),
    st.text(alphabet=st.characters(exclude_categories=("Cs",)), min_size=1, max_size=8),
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.lists(hostile_units, min_size=1, max_size=6).map("".join))
def test_scoring_work_per_character_is_bounded(pipeline, unit):
    def work(repeats: int) -> int:
        try:
            post = parse_post({"text": (unit * repeats)[: 1200 * repeats // 300]})
        except InvalidPost:  # e.g. a NUL, or only spaces: refused before any scoring
            assume(False)
        return bytecodes_run(lambda _: pipeline.score_batch([post]), "")

    small, large = work(300), work(1200)
    # Four times the text: at most four times the work, plus room for fixed per-call costs.
    assert large <= 4.4 * small + 20_000
