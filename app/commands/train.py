"""`socialpulse train` and `socialpulse report`."""

from __future__ import annotations

import click


@click.command()
def train() -> None:
    """Train the clustering and engagement models and save a new version."""
    raise click.ClickException("not available yet")


@click.command()
def report() -> None:
    """Write the HTML report of a model version."""
    raise click.ClickException("not available yet")
