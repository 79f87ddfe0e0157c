"""`socialpulse audiences fit | show | export`: segment the authors, show the segments,
export every author's segment."""

from __future__ import annotations

import csv
import json
from typing import Any

import click

from app.commands.options import column_mapping, encoding_option, load_config, mapping_options


@click.group()
def audiences() -> None:
    """Audience segments: authors grouped by interests, activity and engagement."""


@audiences.command("fit")
@click.option(
    "--file",
    "file_",
    type=click.Path(exists=True, dir_okay=False),
    help="Segment the authors of this CSV/TSV/JSONL file (default: the archive).",
)
@mapping_options
@encoding_option
@click.option(
    "--synthetic",
    type=click.IntRange(1_000, 2_000_000),
    help="Segment N posts of the synthetic stream with planted segments instead.",
)
@click.option("--k", "k", type=click.IntRange(0, 50), help="Segments (0: by silhouette).")
@click.option("--min-posts", type=click.IntRange(1, 10_000), help="Posts an author needs.")
@click.option("--weights", help="Feature block weights, e.g. interest=1,activity=0.5.")
@click.option("--model-dir", help="Folder of model versions [SOCIALPULSE_MODEL_DIR].")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def fit_command(
    file_, encoding, synthetic, k, min_posts, weights, model_dir, as_json, **columns
) -> None:
    """Fit the segments and save them as a new version (ids follow the newest version).

    Posts come from the archive (SOCIALPULSE_ARCHIVE_URL), a file, or the synthetic stream;
    they are scored with the serving model version. The running service picks the new
    version up at its next start; it also refits on its own schedule.
    """
    from app.audiences import segment_params
    from app.services import model_store
    from insights.audience_data import file_posts, score_posts, score_raw
    from insights.audience_evaluation import planted_stream
    from insights.audiences import fit_segmentation
    from insights.profiles import AuthorProfiles, archive_batches
    from insights.segment_store import SegmentStore
    from insights.segments import SegmentationError
    from models.registry import ArtifactError

    config = load_config(
        model_dir=model_dir, audience_k=k, audience_min_posts=min_posts, audience_weights=weights
    )
    store = SegmentStore(config.model_dir, config.manifest_key())
    # The same bound as the service: the authors seen last, at most this many.
    book = AuthorProfiles(max_authors=config.audience_max_authors, max_idle=0)
    try:
        pipeline = model_store(config).load()
    except ArtifactError as exc:
        raise click.ClickException(str(exc)) from exc
    if synthetic:
        raw, _ = planted_stream(synthetic, max(50, synthetic // 50), config.seed)
        book.update(score_raw(raw, pipeline.score_batch))
        source = f"synthetic ({synthetic} posts, planted segments)"
    elif file_:
        try:
            posts, skipped = file_posts(file_, column_mapping(columns), encoding)
        except (OSError, ValueError) as exc:
            raise click.ClickException(f"cannot read {file_}: {exc}") from exc
        book.update(score_posts(posts, pipeline.score_batch))
        source = f"file {file_} ({len(posts)} posts, {skipped} rows skipped)"
    else:
        from archive.store import ArchiveStore

        url = config.archive_database_url
        if url is None:
            raise click.UsageError("the archive is off: pass --file or --synthetic")
        archive = ArchiveStore(url)
        try:
            archive.migrate()
            for batch in archive_batches(archive):
                book.update(batch)
        except Exception as exc:
            raise click.ClickException(f"cannot read the archive: {exc}") from exc
        finally:
            archive.close()
        source = f"archive ({book.posts_seen} posts)"
    previous = None
    try:
        previous = store.load()
    except Exception:  # none yet, or refused: ids start again from 0
        previous = None
    try:
        segmentation = fit_segmentation(
            book, segment_params(config), previous, config.audience_min_rec_posts
        )
    except SegmentationError as exc:
        raise click.ClickException(str(exc)) from exc
    folder = store.save(segmentation, {"source": source})
    if as_json:
        click.echo(json.dumps(segmentation.summary(), indent=2, ensure_ascii=False))
        return
    click.echo(f"{source}: {len(book)} authors profiled")
    _print(segmentation)
    click.echo(f"\nsaved {folder}")


@audiences.command("show")
@click.option("--version", "version_", help="Segmentation version [newest].")
@click.option("--model-dir", help="Folder of model versions [SOCIALPULSE_MODEL_DIR].")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def show_command(version_, model_dir, as_json) -> None:
    """Show the segments of a saved version: profiles and recommendations."""
    segmentation = _load(version_, model_dir)
    if as_json:
        click.echo(json.dumps(segmentation.to_dict(), indent=2, ensure_ascii=False))
        return
    _print(segmentation, details=True)


@audiences.command("export")
@click.option("--version", "version_", help="Segmentation version [newest].")
@click.option("--model-dir", help="Folder of model versions [SOCIALPULSE_MODEL_DIR].")
@click.option(
    "--format",
    "format_",
    type=click.Choice(["json", "csv"]),
    default="json",
    show_default=True,
    help="json: everything with every author's segment; csv: author,segment rows.",
)
@click.option(
    "--out", type=click.Path(dir_okay=False, writable=True), help="File to write [stdout]."
)
def export_command(version_, model_dir, format_, out) -> None:
    """Export a saved segmentation."""
    segmentation = _load(version_, model_dir)
    with click.open_file(out or "-", "w", encoding="utf-8") as handle:
        if format_ == "json":
            json.dump(segmentation.to_dict(authors=True), handle, ensure_ascii=False, indent=1)
            handle.write("\n")
        else:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(["author", "segment", "segment_name"])
            for author, segment in sorted(segmentation.labels.items()):
                writer.writerow([author, segment, segmentation.segments[segment]["name"]])
    if out:
        click.echo(f"wrote {out}", err=True)


def _load(version: str | None, model_dir: str | None):
    from insights.segment_store import SegmentStore
    from models.registry import ArtifactError

    config = load_config(model_dir=model_dir)
    try:
        return SegmentStore(config.model_dir, config.manifest_key()).load(version)
    except ArtifactError as exc:
        raise click.ClickException(str(exc)) from exc


def _print(segmentation: Any, details: bool = False) -> None:
    metrics = segmentation.metrics
    silhouette = metrics.get("silhouette")
    shown = "–" if silhouette is None else f"{silhouette:.3f}"
    click.echo(
        f"{metrics['k']} segments ({metrics['chosen_by']}) over {metrics['authors']} authors, "
        f"silhouette {shown}"
    )
    for point in metrics.get("k_curve", []):
        click.echo(
            f"  k={point['k']:<3} inertia {point['inertia']:>12,.1f}  "
            f"silhouette {point['silhouette']:.3f}"
        )
    for segment_id in segmentation.ids:
        segment = segmentation.segments[segment_id]
        growth = "" if segment["growth"] is None else f", {segment['growth']:+d} since last"
        click.echo(f"\n[{segment_id}] {segment['name']}: {segment['size']} authors{growth}")
        for feature in segment["distinguishing"]:
            click.echo(f"    - {feature['words']}")
        if not details:
            continue
        recs = segment["recommendations"]
        click.echo(
            f"    recommendations ({recs['basis']} engagement, ≥ {recs['min_posts']} posts):"
        )
        for kind in ("topics", "hashtags", "hours"):
            rows = recs[kind][:3]
            if not rows:
                click.echo(f"      {kind}: too few posts")
                continue
            click.echo(
                f"      {kind}: "
                + "; ".join(
                    f"{r['label']} ×{r['lift']} ({r['posts']} posts, "
                    f"CI {r['ci95'][0]}–{r['ci95'][1]})"
                    for r in rows
                )
            )
