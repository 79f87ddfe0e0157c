"""Scoring speed of the calibrated sentiment model against VADER alone, on labelled tweets."""

from __future__ import annotations

import gc
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from models.calibrated_sentiment import StackedSentimentModel
from models.sentiment import VaderSentimentModel
from models.sentiment_training import load_sentiment_files

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
LABELLED_FILES = (
    SHARED_DATA / "twitter_airline_sentiment" / "Tweets.csv",
    SHARED_DATA / "tweeteval_sentiment_val" / "val.jsonl",
)


def run(n_texts: int = 4000, batch: int = 500, rounds: int = 20) -> dict:
    """µs a post through `score_batch` in micro-batches: VADER alone (as the pipeline runs
    it, and the vaderSentiment library's own `polarity_scores`) and VADER + the calibrated
    model trained as `train --sentiment-file` trains it. The three are interleaved, round
    after round, and each keeps its best round, so a slow spell of the machine does not
    land on one of them only."""
    missing = [str(path) for path in LABELLED_FILES if not path.is_file()]
    if missing:
        return {"skipped": f"labelled tweets not found: {', '.join(missing)}"}
    data = load_sentiment_files(list(LABELLED_FILES))
    model = StackedSentimentModel().fit(data.texts, data.labels, data.groups)
    texts = random.Random(0).sample(data.texts, min(n_texts, len(data.texts)))

    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    library = SentimentIntensityAnalyzer()

    def library_batch(chunk: Sequence[str]) -> None:
        for text in chunk:
            library.polarity_scores(text)

    contenders: dict[str, Callable[[Sequence[str]], object]] = {
        "vader_library": library_batch,
        "vader": VaderSentimentModel().score_batch,
        "calibrated": model.score_batch,
    }
    best = dict.fromkeys(contenders, float("inf"))
    gc.collect()
    gc.freeze()
    for _ in range(rounds):
        for name, score_batch in contenders.items():
            started = time.perf_counter()
            for i in range(0, len(texts), batch):
                score_batch(texts[i : i + batch])
            best[name] = min(best[name], time.perf_counter() - started)
    gc.unfreeze()
    per_post = {name: seconds * 1e6 / len(texts) for name, seconds in best.items()}
    return {
        "texts": len(texts),
        "batch_size": batch,
        "rounds": rounds,
        "text_model_C": model.C_,
        "us_per_post": {name: round(us, 2) for name, us in per_post.items()},
        "calibrated_vs_vader": round(per_post["vader"] / per_post["calibrated"], 3),
        "calibrated_vs_vader_library": round(per_post["vader_library"] / per_post["calibrated"], 3),
    }
