"""The `socialpulse` command."""

from __future__ import annotations

import click

from app.config import Config, ConfigError, documented_settings


def _settings_help() -> str:
    lines = ["Settings (environment variables; flags override them):", "", "\b"]
    lines += [
        f"  {name}  (default {default!r}): {text}" for name, default, text in documented_settings()
    ]
    return "\n".join(lines)


kafka_option = click.option(
    "--kafka", "kafka", metavar="HOST:PORT", help="Kafka brokers [SOCIALPULSE_KAFKA_BOOTSTRAP]."
)


def mapping_options(command):
    """Column-mapping flags shared by every command that reads a file."""
    options = [
        click.option("--text-col", default="text", show_default=True, help="Text column."),
        click.option("--id-col", default="id", show_default=True, help="Post id column."),
        click.option("--author-col", default="author", show_default=True, help="Author column."),
        click.option(
            "--time-col", default="created_at", show_default=True, help="Creation time column."
        ),
        click.option("--time-format", help="strptime format when times are not ISO 8601."),
        click.option("--hashtags-col", help="Hashtags column (else taken from the text)."),
        click.option("--followers-col", help="Author follower count column."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def column_mapping(columns: dict):
    from streaming.sources import ColumnMapping

    return ColumnMapping(
        text=columns["text_col"],
        id=columns["id_col"],
        author=columns["author_col"],
        created_at=columns["time_col"],
        time_format=columns["time_format"],
        hashtags=columns["hashtags_col"],
        author_followers=columns["followers_col"],
    )


@click.group(
    help="SocialPulse: real-time social-media analytics.\n\n" + _settings_help(),
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
def main() -> None:
    pass


@main.command()
@click.option("--host", help="Address to bind [SOCIALPULSE_HOST, default 127.0.0.1].")
@click.option("--port", type=int, help="Port [SOCIALPULSE_PORT, default 5000].")
@click.option(
    "--source",
    type=click.Choice(["synthetic", "file"]),
    help="Live source [SOCIALPULSE_SOURCE, default synthetic].",
)
@click.option("--rate", type=float, help="Synthetic posts per second [SOCIALPULSE_RATE, 20].")
@click.option("--seed", type=int, help="Seed of the synthetic stream [SOCIALPULSE_SEED, 7].")
@click.option("--file", "file_", help="File to replay with --source file [SOCIALPULSE_FILE].")
@click.option(
    "--file-speed",
    type=float,
    help="Replay pace ×N of the original, 0 = as fast as possible [1.0].",
)
@click.option(
    "--kafka",
    "kafka",
    metavar="HOST:PORT",
    help="Show what Kafka workers score instead of scoring in-process "
    "[SOCIALPULSE_KAFKA_BOOTSTRAP].",
)
@click.option("--encoding", default="utf-8", show_default=True, help="Encoding of --file.")
@mapping_options
def serve(host, port, source, rate, seed, file_, file_speed, kafka, encoding, **columns) -> None:
    """Run the web dashboard, form and API on a live stream.

    Without Kafka, posts from the embedded source are scored in this process. With Kafka,
    the dashboard shows the results the workers publish on the scored topic.
    """
    from app import create_app
    from app.services import build_source, services

    config = _config(
        host=host,
        port=port,
        source=source,
        rate=rate,
        seed=seed,
        file=file_,
        file_speed=file_speed,
        kafka_bootstrap=kafka,
    )
    app = create_app(config)
    with app.app_context():
        svc = services()
        try:
            if config.kafka_bootstrap:
                from streaming.kafka_io import Topics, ensure_topics

                ensure_topics(config.kafka_bootstrap, Topics.from_config(config))
                svc.start_kafka_feed(config.kafka_bootstrap)
            else:
                svc.start_stream(build_source(config, column_mapping(columns), encoding))
        except (OSError, ValueError) as exc:
            raise click.UsageError(f"cannot open the source: {exc}") from exc
    click.echo(f"SocialPulse dashboard on http://{config.host}:{config.port}  (Ctrl+C stops)")
    socketio = app.extensions["socketio"]
    try:
        socketio.run(
            app,
            host=config.host,
            port=config.port,
            allow_unsafe_werkzeug=True,
            use_reloader=False,
            log_output=False,
        )
    finally:
        svc.stop()


@main.command()
@kafka_option
def topics(kafka) -> None:
    """Create the raw, scored and dead-letter topics when missing."""
    from streaming.kafka_io import Topics, ensure_topics

    config = _kafka_config(kafka_bootstrap=kafka)
    names = Topics.from_config(config)
    ensure_topics(config.kafka_bootstrap, names)
    click.echo(
        f"topics ready: {names.posts} ({names.partitions} partitions), {names.scored}, {names.dlq}"
    )


def _config(**overrides) -> Config:
    try:
        return Config.from_env(**overrides)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from exc


def _kafka_config(**overrides) -> Config:
    """The configuration of a command that cannot run without Kafka."""
    config = _config(**overrides)
    if not config.kafka_bootstrap:
        raise click.UsageError("set SOCIALPULSE_KAFKA_BOOTSTRAP or pass --kafka HOST:PORT")
    return config


@main.command()
@kafka_option
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
@click.option(
    "--metrics-port",
    type=int,
    default=0,
    show_default=True,
    help="Serve Prometheus metrics on PORT (0: off).",
)
@click.option(
    "--metrics-host",
    default="127.0.0.1",
    show_default=True,
    help="Address the metrics server listens on (0.0.0.0 in a container).",
)
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

    from app.worker import JsonLogFormatter, ScoringWorker, install_signal_handlers

    config = _kafka_config(kafka_bootstrap=kafka, consumer_group=group)
    scoring = ScoringWorker(
        config,
        worker_id,
        learn=learn,
        publish_every=publish_every,
        metrics_port=metrics_port,
        metrics_host=metrics_host,
    )
    handler = logging.StreamHandler()
    if json_logs:
        handler.setFormatter(JsonLogFormatter(scoring.worker_id))
    logging.basicConfig(level=config.log_level.upper(), handlers=[handler], force=True)
    logging.getLogger("kafka").setLevel(logging.WARNING)
    install_signal_handlers(scoring)
    scoring.run()


@main.command()
@kafka_option
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
@click.option("--encoding", default="utf-8", show_default=True, help="File encoding.")
@mapping_options
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def produce(kafka, topic, file_, rate, count, seed, speed, encoding, no_progress, **columns):
    """Send posts to Kafka, keyed by author, with a progress bar and a throughput summary."""
    from tqdm import tqdm

    from streaming.kafka_io import Topics, ensure_topics
    from streaming.produce import produce as send
    from streaming.sources import FileSource, SyntheticSource

    config = _kafka_config(kafka_bootstrap=kafka, topic_posts=topic)
    ensure_topics(config.kafka_bootstrap, Topics.from_config(config))
    if file_:
        source = FileSource(
            file_, column_mapping(columns), speed=speed, encoding=encoding, limit=count
        )
    else:
        source = SyntheticSource(rate=rate, seed=seed, limit=count or 1000)
    with tqdm(total=count, unit="post", disable=no_progress, desc="produce") as bar:
        summary = send(source, config.kafka_bootstrap, config.topic_posts, progress=bar)
    click.echo(
        f"sent {summary.sent} posts to {config.topic_posts} in {summary.seconds:.1f} s "
        f"({summary.rate:,.0f} posts/s)" + (f"; {summary.failed} FAILED" if summary.failed else "")
    )
    if summary.failed:
        raise SystemExit(1)


def _register_model_commands() -> None:
    from app.commands.evaluate import evaluate
    from app.commands.train import report, train

    main.add_command(train)
    main.add_command(evaluate)
    main.add_command(report)


_register_model_commands()

if __name__ == "__main__":
    main()
