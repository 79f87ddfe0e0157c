"""The `socialpulse` command."""

from __future__ import annotations

import click

from app.config import Config, ConfigError, documented_settings


def _settings_help() -> str:
    lines = ["Settings (environment variables; flags override them):", "", "\b"]
    lines += [f"  {name}  (default {default!r}): {text}" for name, default, text in
              documented_settings()]
    return "\n".join(lines)


@click.group(help="SocialPulse: real-time social-media analytics.\n\n" + _settings_help(),
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
def main() -> None:
    pass


@main.command()
@click.option("--host", help="Address to bind [SOCIALPULSE_HOST, default 127.0.0.1].")
@click.option("--port", type=int, help="Port [SOCIALPULSE_PORT, default 5000].")
@click.option("--source", type=click.Choice(["synthetic", "file"]),
              help="Live source [SOCIALPULSE_SOURCE, default synthetic].")
@click.option("--rate", type=float, help="Synthetic posts per second [SOCIALPULSE_RATE, 20].")
@click.option("--seed", type=int, help="Seed of the synthetic stream [SOCIALPULSE_SEED, 7].")
@click.option("--file", "file_", help="File to replay with --source file [SOCIALPULSE_FILE].")
@click.option("--file-speed", type=float,
              help="Replay pace ×N of the original, 0 = as fast as possible [1.0].")
def serve(host, port, source, rate, seed, file_, file_speed) -> None:
    """Run the web dashboard, form and API, scoring a live stream."""
    from app import create_app
    from app.services import build_source, services

    try:
        config = Config.from_env(host=host, port=port, source=source, rate=rate, seed=seed,
                                 file=file_, file_speed=file_speed)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from exc
    app = create_app(config)
    with app.app_context():
        svc = services()
        try:
            svc.start_stream(build_source(config))
        except (OSError, ValueError) as exc:
            raise click.UsageError(f"cannot open the source: {exc}") from exc
    click.echo(f"SocialPulse dashboard on http://{config.host}:{config.port}  (Ctrl+C stops)")
    socketio = app.extensions["socketio"]
    try:
        socketio.run(app, host=config.host, port=config.port, allow_unsafe_werkzeug=True,
                     use_reloader=False, log_output=False)
    finally:
        svc.stop()


if __name__ == "__main__":
    main()
