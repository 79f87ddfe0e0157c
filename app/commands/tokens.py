"""`socialpulse tokens`: bearer tokens for the JSON API (`/api/v1`)."""

from __future__ import annotations

import time

import click

from app.accounts import ROLES, SCOPES
from app.commands.options import account_store


def _when(timestamp: float | None) -> str:
    return time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime(timestamp)) if timestamp else "-"


@click.group()
def tokens() -> None:
    """Create, revoke and list API tokens (sent as `Authorization: Bearer sp_…`)."""


@tokens.command("create")
@click.argument("name")
@click.option(
    "--scope",
    "scopes",
    type=click.Choice(SCOPES),
    multiple=True,
    required=True,
    help="What the token may call (repeat for several): analyze = POST /api/v1/analyze, "
    "read = the API's GET endpoints.",
)
@click.option(
    "--role",
    type=click.Choice(ROLES),
    default="viewer",
    show_default=True,
    help="The role the token acts with.",
)
def create(name: str, scopes: tuple[str, ...], role: str) -> None:
    """Create a token called NAME and print it, once: only its hash is kept."""
    with account_store() as store:
        token, value = store.create_token(name, scopes, role)
    click.echo(f"created token {token.id} ({', '.join(token.scopes)}; acts as {role}):", err=True)
    click.echo(value)


@tokens.command("revoke")
@click.argument("token_id")
def revoke(token_id: str) -> None:
    """Revoke the token TOKEN_ID (the id `tokens list` shows): it stops working at once."""
    with account_store() as store:
        store.revoke_token(token_id)
    click.echo(f"revoked {token_id}")


@tokens.command("list")
def list_tokens() -> None:
    """Every token: id, name, scopes, role, created, last used, revoked."""
    with account_store() as store:
        found = store.tokens()
    for t in found:
        click.echo(
            "\t".join(
                [
                    t.id,
                    t.name,
                    ",".join(t.scopes),
                    t.role,
                    _when(t.created_at),
                    _when(t.last_used_at),
                    _when(t.revoked_at),
                ]
            )
        )
