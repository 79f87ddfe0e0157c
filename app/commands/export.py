"""`socialpulse export`: archived posts, filtered as on Explore, into a CSV, JSON Lines or
Parquet file, streamed a chunk at a time with a progress bar on stderr."""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path

import click

from app.commands.options import load_config, no_progress_option

CHUNK_ROWS = 2000


@click.command()
@click.option(
    "--from", "start", metavar="TIME", help="Posts created at or after (epoch s or ISO 8601)."
)
@click.option("--to", "end", metavar="TIME", help="Posts created before (epoch s or ISO 8601).")
@click.option("-q", "--query", metavar="WORDS", help='Full-text search: all words, "a phrase".')
@click.option("--hashtag", help="A hashtag, with or without #.")
@click.option("--cluster", metavar="ID", help="A topic cluster id.")
@click.option("--author", help="An author, exactly.")
@click.option("--sentiment", type=click.Choice(["positive", "neutral", "negative"]))
@click.option("--compound-min", metavar="X", help="Lowest compound score (-1 to 1).")
@click.option("--compound-max", metavar="X", help="Highest compound score (-1 to 1).")
@click.option("--engagement", type=click.Choice(["low", "medium", "high"]), help="Predicted band.")
@click.option("--source", help="A source, exactly.")
@click.option("--post", "post_id", metavar="ID", help="One post id.")
@click.option("--tracked", metavar="NAME", help="A tracked topic: any of its keywords or hashtags.")
@click.option(
    "--format",
    "fmt_name",
    type=click.Choice(["csv", "jsonl", "parquet"]),
    default="csv",
    show_default=True,
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File to write [socialpulse-posts-<UTC time>.<format> here]; - for stdout.",
)
@no_progress_option
def export(
    start,
    end,
    query,
    hashtag,
    cluster,
    author,
    sentiment,
    compound_min,
    compound_max,
    engagement,
    source,
    post_id,
    tracked,
    fmt_name,
    output,
    no_progress,
):
    """Export archived posts (SOCIALPULSE_ARCHIVE_URL), filtered as on Explore.

    Reads the archive in chunks of 2,000 rows by keyset, so memory stays flat however many
    posts match. A file is written whole or not at all (under a temporary name until done).
    """
    from sqlalchemy.exc import SQLAlchemyError

    from archive import queries
    from archive.export import FORMATS, counted
    from archive.queries import PostFilter
    from archive.store import ArchiveStore, redact

    config = load_config()
    url = config.archive_database_url
    if url is None:
        raise click.UsageError("the archive is off (SOCIALPULSE_ARCHIVE_URL=off)")
    given = {
        "from": start,
        "to": end,
        "q": query,
        "hashtag": hashtag,
        "cluster": cluster,
        "author": author,
        "sentiment": sentiment,
        "compound_min": compound_min,
        "compound_max": compound_max,
        "engagement": engagement,
        "source": source,
        "post": post_id,
        "tracked": tracked,
    }
    try:
        wanted = PostFilter.parse({k: v for k, v in given.items() if v is not None})
    except queries.FilterError as exc:
        raise click.UsageError(str(exc)) from exc
    fmt = FORMATS[fmt_name]
    if output is None:
        output = Path(time.strftime("socialpulse-posts-%Y%m%dT%H%M%SZ", time.gmtime()))
        output = output.with_suffix("." + fmt.extension)
    store = ArchiveStore(url)
    to_stdout = str(output) == "-"
    partial = None if to_stdout else output.with_name(output.name + ".partial")
    written = 0
    try:
        store.migrate()
        if wanted.tracked is not None:
            from app.explore import resolve_tracked
            from archive.tracked_store import TrackedTopicStore

            try:
                wanted = resolve_tracked(wanted, TrackedTopicStore(store).topics())
            except queries.FilterError as exc:
                raise click.UsageError(str(exc)) from exc
        with store.engine.connect() as connection:
            total = queries.count(connection, wanted, 10**12, budget=600.0)
        chunks = queries.chunks(
            store.engine.connect, wanted, CHUNK_ROWS, budget=config.explore_timeout
        )
        bar_context = (
            click.progressbar(length=total, label=f"exporting {total:,} posts", file=sys.stderr)
            if not no_progress and total > 0
            else contextlib.nullcontext(None)
        )
        with (
            bar_context as bar,
            click.open_file("-", "wb") if to_stdout else open(partial, "wb") as out,
        ):

            def progress(rows: int) -> None:
                nonlocal written
                written += rows
                if bar is not None:
                    bar.update(rows)

            for part in fmt.write(counted(chunks, progress)):
                out.write(part)
        if partial is not None:
            partial.replace(output)
    except (SQLAlchemyError, queries.ArchiveUnavailable, queries.QueryTooExpensive) as exc:
        raise click.ClickException(f"archive {redact(store.url)}: {exc}") from exc
    finally:
        if partial is not None:
            partial.unlink(missing_ok=True)  # only left when the export did not finish
        store.close()
    where = "stdout" if to_stdout else str(output)
    if written == 0:
        empty = {"csv": "the header only", "jsonl": "no lines", "parquet": "the schema, no rows"}
        click.echo(
            f"no posts match these filters: wrote an empty {fmt.name} file ({empty[fmt.name]}) "
            f"to {where}",
            err=True,
        )
    else:
        click.echo(f"exported {written:,} posts to {where}", err=True)
