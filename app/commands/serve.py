"""`socialpulse serve`: the dashboard, form and API on a live stream."""

from __future__ import annotations

import logging

import click

from app.commands.options import (
    column_mapping,
    encoding_option,
    kafka_option,
    load_config,
    mapping_options,
)

log = logging.getLogger(__name__)


@click.command()
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
@kafka_option(
    "Show what Kafka workers score instead of scoring in-process [SOCIALPULSE_KAFKA_BOOTSTRAP]."
)
@encoding_option
@mapping_options
def serve(host, port, source, rate, seed, file_, file_speed, kafka, encoding, **columns) -> None:
    """Run the web dashboard, form and API on a live stream.

    Without Kafka, posts from the embedded source are scored in this process. With Kafka,
    the dashboard shows the results the workers publish on the scored topic. The server is
    gunicorn with one gevent worker (see `app.server`); SIGTERM or Ctrl+C stops it gracefully.
    """
    from app.auth import AccessSetupError, check_bind

    config = load_config(
        host=host,
        port=port,
        source=source,
        rate=rate,
        seed=seed,
        file=file_,
        file_speed=file_speed,
        kafka_bootstrap=kafka,
    )
    try:  # before anything starts: never serve open to the network
        check_bind(config)
    except AccessSetupError as exc:
        raise click.UsageError(str(exc)) from exc

    # Before the app exists: its locks, events and sockets must be gevent's.
    from gevent import monkey

    monkey.patch_all()
    from app import create_app
    from app.server import serve_forever
    from app.services import build_source, services
    from models.registry import ArtifactError

    try:
        app = create_app(config)
    except ArtifactError as exc:  # one line, not a traceback: what is wrong and what to do
        raise click.ClickException(str(exc)) from exc
    with app.app_context():
        svc = services()
    stream_source = None
    if not config.kafka_bootstrap:
        try:  # opened here so a bad file is a usage error, not a worker that cannot boot
            stream_source = build_source(config, column_mapping(columns), encoding)
        except (OSError, ValueError) as exc:
            raise click.UsageError(f"cannot open the source: {exc}") from exc
        svc.show_span(stream_source)  # a replayed file's windows, before history fills them
    # Before the server listens (and before the fork): the dashboard starts from the
    # archive's history. The connections are closed here; the worker opens its own.
    if svc.archive_keeper is not None:
        with svc.archive_keeper.calls_in_place():
            svc.restore_history()
        svc.archive_keeper.store.close()

    def start() -> None:
        # In the worker, after the fork: background work never crosses a fork.
        svc.hub.renderer.start()
        if stream_source is None:
            svc.start_kafka_feed(config.kafka_bootstrap)
        else:
            svc.start_stream(stream_source)

    def stop() -> None:
        log.info("shutting down: finishing the stream and closing live connections")
        svc.stop()
        app.extensions["socketio"].server.eio.disconnect()

    click.echo(f"SocialPulse dashboard on http://{config.host}:{config.port}  (Ctrl+C stops)")
    click.echo(f"Host names served: {', '.join(config.host_names)} (SOCIALPULSE_ALLOWED_HOSTS)")
    serve_forever(
        app,
        host=config.host,
        port=config.port,
        read_timeout=config.read_timeout,
        shutdown_grace=config.shutdown_grace,
        max_connections=config.max_connections,
        log_level=config.log_level,
        on_start=start,
        on_stop=stop,
    )
