"""`socialpulse replay`: score a recorded stream again, deterministically, apart from the
live one."""

from __future__ import annotations

import os
import signal
import sys
import threading

import click

from app.commands.options import (
    column_mapping,
    encoding_option,
    kafka_option,
    load_config,
    mapping_options,
    no_progress_option,
)


@click.command()
@click.option(
    "--source",
    type=click.Choice(["file", "archive", "kafka"]),
    default="file",
    show_default=True,
    help="Replay a file, the archive's posts of a time range, or a Kafka topic's messages "
    "of a time range (by message timestamp).",
)
@click.option("--file", "file_", help="The file (CSV, TSV or JSONL) with --source file.")
@click.option("--from", "start", help="Start of the time range: ISO 8601 or epoch seconds.")
@click.option("--to", "end", help="End of the time range (excluded).")
@click.option("--topic", help="Kafka topic of raw posts [SOCIALPULSE_TOPIC_POSTS].")
@click.option(
    "--speed",
    type=float,
    default=0.0,
    show_default=True,
    help="×N of the original pace, by event time; 0 replays as fast as possible.",
)
@click.option("--batch", type=int, help="Micro-batch size [SOCIALPULSE_BATCH_MAX_POSTS].")
@click.option("--model-version", help="Model version to score with [the newest, or the pinned].")
@click.option(
    "--learning",
    type=click.Choice(["frozen", "checkpoints"]),
    default="frozen",
    show_default=True,
    help="frozen: never learn or refit; checkpoints: the topic clusterer learns at "
    "event-time checkpoints (every --learn-every seconds of event time, and every 5,000 "
    "posts). Both are deterministic.",
)
@click.option(
    "--learn-every",
    type=float,
    default=3600.0,
    show_default=True,
    help="Seconds of event time between learning checkpoints.",
)
@click.option(
    "--to-archive",
    is_flag=True,
    help="Also store the scored posts and dead letters in the archive (off: kept apart).",
)
@kafka_option()
@encoding_option
@mapping_options
@no_progress_option
def replay(
    source,
    file_,
    start,
    end,
    topic,
    speed,
    batch,
    model_version,
    learning,
    learn_every,
    to_archive,
    kafka,
    encoding,
    no_progress,
    **columns,
) -> None:
    """Replay recorded posts in event-time order and print what they gave.

    Scores with one model version, frozen (nothing is learned or refitted) or learning at
    event-time checkpoints (--learning): either way the same input, version and settings
    print the same fingerprints (`scores_sha256`, `aggregates_sha256`) at any --speed and
    --batch. Progress and the replay clock go to
    stderr; Ctrl+C stops the replay and prints what it gave so far; Ctrl+Z pauses it.
    """
    import json
    import logging

    from app.replay import ReplayError, ReplaySession, ReplaySpec, open_input, parse_time
    from app.services import model_store
    from app.wordcloud_image import stop_words
    from models.registry import ArtifactError, load_bundle

    config = load_config(kafka_bootstrap=kafka)
    logging.basicConfig(
        level=config.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("kafka").setLevel(logging.WARNING)
    try:
        spec = ReplaySpec(
            source,
            file_,
            column_mapping(columns),
            encoding,
            parse_time(start, "--from"),
            parse_time(end, "--to"),
            topic,
            speed or None,
            to_archive,
            model_version,
            batch,
            learning,
            learn_every,
        ).validated()
        ordered = open_input(spec, config, config.replay_order_bound)
    except ReplayError as exc:
        raise click.UsageError(str(exc)) from exc
    try:
        store = model_store(config)
        if model_version:
            pipeline = load_bundle(config.model_dir, model_version, store.key).pipeline()
        else:
            pipeline = store.load()
    except (ArtifactError, OSError, ValueError) as exc:
        raise click.ClickException(f"cannot load the model: {exc}") from exc
    archive_sink, writer = _archive_sink(config) if to_archive else (None, None)
    session = ReplaySession(
        "cli",
        spec,
        ordered,
        pipeline,
        config,
        [archive_sink] if archive_sink is not None else [],
        stop_words(),
    )
    runner = threading.Thread(target=session.run, name="replay", daemon=True)
    previous = _pause_on_suspend(session)
    runner.start()
    try:
        while runner.is_alive():
            runner.join(0.5)
            if not no_progress:
                _progress(session)
    except KeyboardInterrupt:
        session.stop()
        runner.join()
    for number, handler in previous.items():  # the caller's handlers back
        signal.signal(number, handler)
    if not no_progress:
        _progress(session)
        click.echo("", err=True)
    if archive_sink is not None:
        archive_sink.close()
        assert writer is not None
        writer.join(15.0)
    status = session.status()
    digests = session.digests()
    summary = {
        "state": status["state"],
        "error": status["error"],
        "scored": status["scored"],
        "dead_lettered": status["dead_lettered"],
        "dead_letters": status["dead_letters"],
        "model_version": status["model_version"],
        "learning": status["learning"],
        "checkpoints": status["checkpoints"],
        "window_seconds": status["window_seconds"],
        "replay_clock": status["progress"]["replay_clock"],
        "scores_sha256": digests["scores"],
        "aggregates_sha256": digests["aggregates"],
    }
    click.echo(json.dumps(summary, indent=2))
    if session.state == "failed":
        sys.exit(1)


def _pause_on_suspend(session) -> dict:
    """Ctrl+Z pauses the replay (its clock stops with the process), `fg` resumes it: the
    time suspended is not replayed time, so the pacing goes on where it stopped."""
    if not hasattr(signal, "SIGTSTP"):
        return {}

    def suspend(signum, frame) -> None:
        session.pause()
        signal.signal(signal.SIGTSTP, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTSTP)  # stop as the shell expects

    def resume(signum, frame) -> None:
        signal.signal(signal.SIGTSTP, suspend)
        session.resume()

    return {
        signal.SIGTSTP: signal.signal(signal.SIGTSTP, suspend),
        signal.SIGCONT: signal.signal(signal.SIGCONT, resume),
    }


def _archive_sink(config):
    """The archive writer of `--to-archive`, running in a thread."""
    from archive.sink import ArchiveKeeper, ArchiveSink
    from archive.store import ArchiveStore

    url = config.archive_database_url
    if url is None:
        raise click.UsageError("--to-archive: the archive is off (SOCIALPULSE_ARCHIVE_URL=off)")
    keeper = ArchiveKeeper(ArchiveStore(url), config.archive_retention_days, prune=False)
    if not keeper.ensure_ready():
        raise click.ClickException(f"--to-archive: {keeper.error}")
    sink = ArchiveSink(keeper, max_buffered=config.archive_buffer)
    writer = threading.Thread(target=sink.run, name="archive-writer", daemon=True)
    writer.start()
    return sink, writer


def _progress(session) -> None:
    """One line on stderr: a bar, the share done, the replay clock and the counts."""
    from datetime import UTC, datetime

    progress = session.source.progress()
    fraction = progress["fraction"]
    width = 30
    filled = int(width * (fraction or 0.0))
    bar = "#" * filled + "-" * (width - filled)
    share = f"{fraction * 100:5.1f}%" if fraction is not None else "    ?"
    clock = progress["replay_clock"]
    when = datetime.fromtimestamp(clock, UTC).strftime("%Y-%m-%d %H:%M:%S") if clock else "-"
    total = f"/{progress['total']:,}" if progress["total"] else ""
    line = (
        f"\r[{bar}] {share}  {when} UTC  {progress['handed_out']:,}{total} posts  "
        f"{session.letters.count:,} dead letters  {session.state}"
    )
    click.echo(line, err=True, nl=False)
