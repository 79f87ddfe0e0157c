"""The Quix Streams peer of `make bench`: JSON decode and VADER only, one small result per post.

It runs in its own environment (requirements-bench.txt) and imports nothing of SocialPulse:
    python -m bench.quix_peer --bootstrap B --input TOPIC --output TOPIC --group G
"""

from __future__ import annotations

import argparse
import time

from quixstreams import Application
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--input", required=True, help="topic of raw JSON posts")
    parser.add_argument("--output", required=True, help="topic for the scores")
    parser.add_argument("--group", required=True, help="consumer group")
    parser.add_argument("--client-id", help="the consumer's client.id, for a group watcher")
    parser.add_argument("--state-dir", default="state", help="Quix's state directory")
    args = parser.parse_args()

    analyzer = SentimentIntensityAnalyzer()
    app = Application(
        broker_address=args.bootstrap,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        state_dir=args.state_dir,
        consumer_extra_config={"client.id": args.client_id} if args.client_id else None,
    )
    sdf = app.dataframe(app.topic(args.input, value_deserializer="json"))
    sdf = sdf.apply(lambda post: {"id": post["id"], **analyzer.polarity_scores(post["text"])})
    # Quix forwards the input's timestamp; stamp the produce time, as the workers' clients do.
    sdf = sdf.set_timestamp(lambda value, key, timestamp, headers: time.time_ns() // 1_000_000)
    sdf.to_topic(app.topic(args.output, value_serializer="json"))
    app.run()


if __name__ == "__main__":
    main()
