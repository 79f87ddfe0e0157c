"""`socialpulse topics`: create the Kafka topics when missing."""

from __future__ import annotations

import click

from app.commands.options import kafka_option, load_kafka_config


@click.command()
@kafka_option()
def topics(kafka) -> None:
    """Create the raw, scored and dead-letter topics when missing."""
    from streaming.kafka_clients import kafka_client

    config = load_kafka_config(kafka_bootstrap=kafka)
    names = config.topics
    kafka_client(config.kafka_client).ensure_topics(config.kafka_bootstrap, names)
    click.echo(
        f"topics ready: {names.posts} ({names.partitions} partitions), {names.scored}, {names.dlq}"
    )
