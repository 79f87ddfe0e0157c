"""`socialpulse worker`: one member of the Kafka scoring consumer group."""

from __future__ import annotations

import click

from app.commands.options import kafka_option, load_kafka_config, metrics_options


@click.command()
@kafka_option()
@click.option("--group", help="Consumer group [SOCIALPULSE_CONSUMER_GROUP].")
@click.option("--worker-id", help="Name in logs and metrics [host-pid].")
@click.option(
    "--learn/--no-learn",
    default=False,
    show_default=True,
    help="Update the clusterer online and publish new model versions "
    "(one worker of the group at most).",
)
@click.option(
    "--publish-every",
    type=float,
    default=300.0,
    show_default=True,
    help="Seconds between published versions with --learn.",
)
@metrics_options
@click.option(
    "--json-logs/--text-logs",
    default=True,
    show_default=True,
    help="One JSON object per log line, with the worker id.",
)
def worker(
    kafka, group, worker_id, learn, publish_every, metrics_port, metrics_host, json_logs
) -> None:
    """Score the raw-post topic in a consumer group (at-least-once, with dead letters)."""
    import logging

    from models.store import ModelStore
    from streaming.worker import (
        JsonLogFormatter,
        ScoringWorker,
        WorkerSettings,
        install_signal_handlers,
    )

    config = load_kafka_config(kafka_bootstrap=kafka, consumer_group=group)
    settings = WorkerSettings(
        bootstrap=config.kafka_bootstrap,
        topics=config.topics,
        group=config.consumer_group,
        worker_id=worker_id or "",
        batch_max_posts=config.batch_max_posts,
        batch_max_wait=config.batch_max_wait,
        max_text_length=config.max_text_length,
        max_clock_skew=config.max_clock_skew,
        learn=learn,
        publish_every=publish_every,
        metrics_port=metrics_port,
        metrics_host=metrics_host,
        client=config.kafka_client,
    )
    store = ModelStore(
        config.model_dir, config.model_version, seed=config.seed, key=config.manifest_key()
    )
    scoring = ScoringWorker(settings, store)
    handler = logging.StreamHandler()
    if json_logs:
        handler.setFormatter(JsonLogFormatter(scoring.worker_id))
    logging.basicConfig(level=config.log_level.upper(), handlers=[handler], force=True)
    logging.getLogger("kafka").setLevel(logging.WARNING)
    install_signal_handlers(scoring)
    from models.registry import ArtifactError

    try:
        scoring.run()
    except ArtifactError as exc:  # no model version to trust: say so in one line
        raise click.ClickException(str(exc)) from exc
