"""`socialpulse users`: the accounts that log in to the pages."""

from __future__ import annotations

import sys

import click

from app.accounts import ROLES
from app.commands.options import account_store


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        # One line, for scripts: `printf '%s\n' "$PASSWORD" | socialpulse users add …`.
        return sys.stdin.readline().rstrip("\r\n")
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


password_stdin_option = click.option(
    "--password-stdin", is_flag=True, help="Read the password from the first line of stdin."
)


@click.group()
def users() -> None:
    """Add, remove and list the users who log in to the dashboard.

    Once a user exists, every page asks for a login (SOCIALPULSE_AUTH=auto).
    """


@users.command("add")
@click.argument("name")
@click.option(
    "--role",
    type=click.Choice(ROLES),
    default="viewer",
    show_default=True,
    help="viewer: pages; analyst: also replay, export, corrections; admin: also alert "
    "rules, model pinning, users and tokens.",
)
@password_stdin_option
def add(name: str, role: str, password_stdin: bool) -> None:
    """Add the user NAME, asking for a password (12 characters or more)."""
    with account_store() as store:
        store.add_user(name, _read_password(password_stdin), role)
    click.echo(f"added {name} ({role})")


@users.command("remove")
@click.argument("name")
def remove(name: str) -> None:
    """Remove the user NAME; their sessions end at their next request."""
    with account_store() as store:
        store.remove_user(name)
    click.echo(f"removed {name}")


@users.command("list")
def list_users() -> None:
    """Every user and role."""
    with account_store() as store:
        for user in store.users():
            click.echo(f"{user.name}\t{user.role}")


@users.command("set-role")
@click.argument("name")
@click.argument("role", type=click.Choice(ROLES))
def set_role(name: str, role: str) -> None:
    """Give the user NAME another role (it applies at their next request)."""
    with account_store() as store:
        store.set_role(name, role)
    click.echo(f"{name} is now {role}")


@users.command("set-password")
@click.argument("name")
@password_stdin_option
def set_password(name: str, password_stdin: bool) -> None:
    """Give the user NAME a new password; it ends their sessions."""
    with account_store() as store:
        if store.user(name) is None:
            raise click.UsageError(f"no user {name!r}")
        store.set_password(name, _read_password(password_stdin))
    click.echo(f"new password set for {name}; their sessions have ended")
