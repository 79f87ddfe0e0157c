"""`socialpulse archive`: store every scored post and dead letter from Kafka in the archive."""

from __future__ import annotations

import click

from app.commands.options import kafka_option, load_config, metrics_options


@click.command()
@kafka_option()
@click.option("--group", help="Consumer group [SOCIALPULSE_ARCHIVE_GROUP].")
@click.option("--consumer-id", help="Name in logs and the Kafka client id [host-pid].")
@click.option(
    "--migrate",
    "migrate_only",
    is_flag=True,
    help="Create or upgrade the archive's schema, then exit (no Kafka needed).",
)
@click.option(
    "--prune",
    "prune_only",
    is_flag=True,
    help="Delete what is older than SOCIALPULSE_ARCHIVE_RETENTION_DAYS, then exit.",
)
@metrics_options
def archive(kafka, group, consumer_id, migrate_only, prune_only, metrics_port, metrics_host):
    """Archive the scored and dead-letter topics (SOCIALPULSE_ARCHIVE_URL).

    Reads both topics in its own consumer group and commits offsets only after the
    database committed: a crash, a broker or a database restart loses and duplicates
    nothing. Run one or more; they share the partitions.
    """
    import logging

    from archive.consumer import ArchiveConsumer, ArchiveConsumerSettings, install_signal_handlers
    from archive.store import ArchiveStore, redact

    config = load_config(kafka_bootstrap=kafka, archive_group=group)
    logging.basicConfig(
        level=config.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("kafka").setLevel(logging.WARNING)
    url = config.archive_database_url
    if url is None:
        raise click.UsageError("the archive is off (SOCIALPULSE_ARCHIVE_URL=off)")
    store = ArchiveStore(url)
    if migrate_only or prune_only:
        try:
            store.migrate()
            if prune_only:
                posts, letters = store.prune(config.archive_retention_days)
                click.echo(f"deleted {posts} posts and {letters} dead letters")
            click.echo(f"archive {redact(store.url)} at revision {store.revision()}")
        except Exception as exc:
            raise click.ClickException(f"archive {redact(store.url)}: {exc}") from exc
        finally:
            store.close()
        return
    if not config.kafka_bootstrap:
        raise click.UsageError("set SOCIALPULSE_KAFKA_BOOTSTRAP or pass --kafka HOST:PORT")
    settings = ArchiveConsumerSettings(
        bootstrap=config.kafka_bootstrap,
        topics=config.topics,
        group=config.archive_group,
        consumer_id=consumer_id or "",
        batch_max_posts=config.batch_max_posts,
        batch_max_wait=max(config.batch_max_wait, 0.1),
        retention_days=config.archive_retention_days,
        metrics_port=metrics_port,
        metrics_host=metrics_host,
        client=config.kafka_client,
    )
    consumer = ArchiveConsumer(settings, store)
    install_signal_handlers(consumer)
    consumer.run()
