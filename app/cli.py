"""The `socialpulse` command group; each command lives in `app.commands`."""

from __future__ import annotations

import click

from app.commands import (
    archive,
    audiences,
    evaluate,
    export,
    produce,
    replay,
    report,
    serve,
    tokens,
    topics,
    train,
    users,
    worker,
)
from app.config import documented_settings


def _settings_help() -> str:
    lines = ["Settings (environment variables; flags override them):", "", "\b"]
    lines += [
        f"  {name}  (default {default!r}): {text}" for name, default, text in documented_settings()
    ]
    return "\n".join(lines)


@click.group(
    help="SocialPulse: real-time social-media analytics.\n\n" + _settings_help(),
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
def main() -> None:
    pass


for command in (
    serve.serve,
    topics.topics,
    worker.worker,
    produce.produce,
    train.train,
    evaluate.evaluate,
    report.report,
    users.users,
    tokens.tokens,
    archive.archive,
    export.export,
    replay.replay,
    audiences.audiences,
):
    main.add_command(command)

if __name__ == "__main__":
    main()
