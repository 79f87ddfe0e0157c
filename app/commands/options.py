"""What the `socialpulse` commands share: their common flags and how they read the config."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from app.accounts import AccountError, AccountStore
from app.config import Config, ConfigError

KAFKA_HELP = "Kafka brokers [SOCIALPULSE_KAFKA_BOOTSTRAP]."

text_col_option = click.option("--text-col", default="text", show_default=True, help="Text column.")
encoding_option = click.option(
    "--encoding", default="utf-8", show_default=True, help="Encoding of the file(s), e.g. latin-1."
)
no_progress_option = click.option("--no-progress", is_flag=True, help="No progress bar.")


class ClusterCount(click.ParamType):
    """An integer of at least 2, or "auto"."""

    name = "k"

    def convert(self, value, param, ctx):
        if isinstance(value, int) or str(value).strip().lower() != "auto":
            try:
                number = int(value)
            except (TypeError, ValueError):
                self.fail(f"{value!r} is neither a whole number nor 'auto'", param, ctx)
            if number < 2:
                self.fail(f"{number} is below 2: give at least 2 clusters, or 'auto'", param, ctx)
            return number
        return "auto"


def kafka_option(help: str = KAFKA_HELP):
    """--kafka HOST:PORT, which overrides SOCIALPULSE_KAFKA_BOOTSTRAP."""
    return click.option("--kafka", "kafka", metavar="HOST:PORT", help=help)


def metrics_options(command):
    """`--metrics-port` and `--metrics-host` of a long-running Kafka command."""
    command = click.option(
        "--metrics-host",
        default="127.0.0.1",
        show_default=True,
        help="Address the metrics server listens on (0.0.0.0 in a container).",
    )(command)
    return click.option(
        "--metrics-port",
        type=int,
        default=0,
        show_default=True,
        help="Serve Prometheus metrics on PORT (0: off).",
    )(command)


def mapping_options(command):
    """Column-mapping flags of every command that reads posts from a file (--text-col …)."""
    options = [
        text_col_option,
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


def column_mapping(columns: dict[str, Any]):
    """The `ColumnMapping` of the values `mapping_options` collected."""
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


def load_config(**overrides: Any) -> Config:
    """The config from the environment with the flags given; a bad value is a usage error."""
    try:
        return Config.from_env(**overrides)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from exc


def load_kafka_config(**overrides: Any) -> Config:
    """The config of a command that cannot run without Kafka."""
    config = load_config(**overrides)
    if not config.kafka_bootstrap:
        raise click.UsageError("set SOCIALPULSE_KAFKA_BOOTSTRAP or pass --kafka HOST:PORT")
    return config


@contextmanager
def account_store() -> Iterator[AccountStore]:
    """This instance's users and tokens; an `AccountError` inside is a usage error."""
    try:
        yield AccountStore(load_config().accounts_path)
    except AccountError as exc:
        raise click.UsageError(str(exc)) from exc


def load_corrections(config, wanted: bool | None):
    """The archive's corrections; None when not wanted, or (unless asked for with
    --corrections) when there is no archive or it cannot be read. Never writes."""
    if wanted is False:
        return None
    url = config.archive_database_url
    if url is None:
        if wanted:
            raise click.UsageError("--corrections needs the archive (SOCIALPULSE_ARCHIVE_URL)")
        return None
    from sqlalchemy import inspect
    from sqlalchemy.exc import SQLAlchemyError

    from archive.correction_store import CorrectionStore
    from archive.store import ArchiveStore, redact

    store = ArchiveStore(url)
    try:
        path = store.sqlite_path
        if (path is not None and not path.exists()) or not inspect(store.engine).has_table(
            "corrections"
        ):
            if wanted:
                raise click.ClickException(f"the archive {redact(url)} holds no corrections yet")
            return None
        return CorrectionStore(store).all()
    except SQLAlchemyError as exc:
        if wanted:
            raise click.ClickException(
                f"cannot read corrections from the archive {redact(url)}: {exc}"
            ) from exc
        click.echo(
            f"corrections not used: the archive is unavailable ({type(exc).__name__})", err=True
        )
        return None
    finally:
        store.close()
