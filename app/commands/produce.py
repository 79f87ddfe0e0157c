"""`socialpulse produce`: send synthetic posts or a file to Kafka."""

from __future__ import annotations

import click

from app.commands.options import (
    column_mapping,
    encoding_option,
    kafka_option,
    load_kafka_config,
    mapping_options,
    no_progress_option,
)


@click.command()
@kafka_option()
@click.option("--topic", help="Topic to send to [SOCIALPULSE_TOPIC_POSTS].")
@click.option(
    "--file",
    "file_",
    type=click.Path(exists=True, dir_okay=False),
    help="CSV/TSV/JSONL file to send instead of synthetic posts.",
)
@click.option(
    "--rate",
    type=float,
    default=20.0,
    show_default=True,
    help="Synthetic posts per second (0: as fast as possible).",
)
@click.option("--count", type=int, help="Stop after this many posts [synthetic: 1000].")
@click.option("--seed", type=int, default=7, show_default=True, help="Synthetic seed.")
@click.option(
    "--speed",
    type=float,
    default=0.0,
    show_default=True,
    help="File pace ×N of its timestamps (0: as fast as possible).",
)
@encoding_option
@mapping_options
@no_progress_option
def produce(kafka, topic, file_, rate, count, seed, speed, encoding, no_progress, **columns):
    """Send posts to Kafka, keyed by author, with a progress bar and a throughput summary."""
    from tqdm import tqdm

    from streaming.kafka_clients import kafka_client
    from streaming.produce import produce as send
    from streaming.sources import FileSource, SyntheticSource

    config = load_kafka_config(kafka_bootstrap=kafka, topic_posts=topic)
    client = kafka_client(config.kafka_client)
    client.ensure_topics(config.kafka_bootstrap, config.topics)
    if file_:
        source = FileSource(
            file_, column_mapping(columns), speed=speed, encoding=encoding, limit=count
        )
    else:
        source = SyntheticSource(rate=rate, seed=seed, limit=count or 1000)
    with tqdm(total=count, unit="post", disable=no_progress, desc="produce") as bar:
        producer = client.producer(config.kafka_bootstrap, "socialpulse-producer", linger_ms=20)
        summary = send(source, producer, config.topic_posts, progress=bar)
    click.echo(
        f"sent {summary.sent} posts to {config.topic_posts} in {summary.seconds:.1f} s "
        f"({summary.rate:,.0f} posts/s)" + (f"; {summary.failed} FAILED" if summary.failed else "")
    )
    if summary.failed:
        raise SystemExit(1)
