"""`socialpulse report`: the HTML report of a model version."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from app.commands.options import load_config


@click.command()
@click.option(
    "--version",
    "version_",
    help="Model version [SOCIALPULSE_MODEL_VERSION, else the newest].",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, writable=True),
    help="HTML file to write [report-<version>.html]; '-' for standard output.",
)
@click.option("--model-dir", help="Folder of model versions [SOCIALPULSE_MODEL_DIR].")
def report(version_, out, model_dir) -> None:
    """Write the HTML report of a model version (self-contained: figures are embedded).

    Drawn from what the version stores (hash-checked): held-out predictions of the forest
    and, when trained, the network; correlations; topic clusters; feature importance.
    """
    from app.report import build_report
    from models.registry import (
        EVALUATION_FILE,
        ArtifactError,
        list_versions,
        load_evaluation,
        read_manifest,
    )

    config = load_config(model_dir=model_dir)
    root = Path(config.model_dir)
    version = version_ or config.model_version
    versions = list_versions(root)
    if version is None:
        if not versions:
            raise click.ClickException(f"no model versions under {root}; run `socialpulse train`")
        version = versions[-1]
    try:
        if version not in versions:
            raise ArtifactError(f"model version {version!r} not found under {root}")
        key = config.manifest_key()
        manifest = read_manifest(root, version, key)
        if EVALUATION_FILE not in manifest.get("files", {}):
            raise ArtifactError(
                f"model version {version} has no evaluation data (it predates reports); "
                "train a new version with `socialpulse train`"
            )
        html = build_report(manifest, load_evaluation(root, version, key), _audiences(config))
    except ArtifactError as exc:
        raise click.ClickException(str(exc)) from exc
    if out == "-":
        sys.stdout.write(html)
        return
    path = Path(out or f"report-{version}.html")
    path.write_text(html, encoding="utf-8")
    click.echo(f"wrote {path}")


def _audiences(config):
    """The newest saved segmentation, for the report's audience section (None: none)."""
    from insights.segment_store import SegmentStore
    from models.registry import ArtifactError

    try:
        return SegmentStore(config.model_dir, config.manifest_key()).load()
    except ArtifactError:
        return None
