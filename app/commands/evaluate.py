"""`socialpulse evaluate ...`: measure the live models on labelled data."""

from __future__ import annotations

import click


@click.group()
def evaluate() -> None:
    """Measure the live clustering and sentiment paths on a labelled file."""
