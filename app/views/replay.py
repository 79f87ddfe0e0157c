"""The Replay page: start a replay of a file, an archived or a Kafka time range, watch it
on its own dashboard, pause, resume and stop it."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from flask import Blueprint, current_app, jsonify, render_template, request

from app.auth import require_role
from app.replay import EXTENSION, SOURCES, ReplayError, ReplayManager, ReplaySpec, parse_time
from app.services import services
from streaming.replay import MAX_SPEED
from streaming.sources import DELIMITED_SUFFIXES, JSONL_SUFFIXES, ColumnMapping

bp = Blueprint("replay", __name__)

FILES_LISTED = 200
MAX_NAME = 200  # longest file or column name accepted
FIELDS = {
    "source",
    "file",
    "start",
    "end",
    "topic",
    "speed",
    "to_archive",
    "model_version",
    "text_col",
    "id_col",
    "author_col",
    "time_col",
    "time_format",
    "encoding",
    "learning",
    "learn_every",
}
ENCODINGS = ("utf-8", "latin-1", "utf-16")


def manager() -> ReplayManager:
    return current_app.extensions[EXTENSION]


def replay_files() -> list[str]:
    """The files of the replay folder the page offers (names only, sorted, bounded)."""
    folder = services().config.replay_folder
    if not folder.is_dir():
        return []
    suffixes = JSONL_SUFFIXES + DELIMITED_SUFFIXES
    names = sorted(p.name for p in folder.iterdir() if p.is_file() and p.suffix.lower() in suffixes)
    return names[:FILES_LISTED]


@bp.get("/replay")
@require_role("analyst")
def replay_page():
    config = services().config
    return render_template(
        "replay.html",
        files=replay_files(),
        folder=str(config.replay_folder),
        sources=SOURCES,
        kafka=bool(config.kafka_bootstrap),
        archive=config.archive_database_url is not None,
        can_archive=services().archive_sink is not None,
        topic=config.topic_posts,
        max_speed=int(MAX_SPEED),
        session_id=request.args.get("session", "")[:64],
        sessions=[s.status() for s in manager().list()],
    )


def _error(message: str, status: int = 400):
    return jsonify(error=message), status


def _text(body: dict[str, Any], name: str, default: str | None = None) -> str | None:
    value = body.get(name, default)
    if value is None or value == "":
        return default
    if not isinstance(value, str):
        raise ReplayError(f"{name} must be text")
    if len(value) > MAX_NAME or "\x00" in value:
        raise ReplayError(f"{name} is longer than {MAX_NAME} characters")
    return value


def _file_path(name: str | None) -> str:
    """The named file of the replay folder; never a path outside it."""
    if not name:
        raise ReplayError("choose a file to replay")
    if Path(name).name != name or name in (".", ".."):
        raise ReplayError("give a file name of the replay folder, not a path")
    folder = services().config.replay_folder.resolve()
    path = (folder / name).resolve()
    if path.parent != folder or not path.is_file():
        raise ReplayError(f"no file {name!r} in the replay folder", 404)
    return str(path)


def spec_from(body: Any) -> ReplaySpec:
    """A replay spec from the page's JSON; ReplayError saying what is wrong."""
    if not isinstance(body, dict):
        raise ReplayError("send a JSON object")
    unknown = sorted(str(k)[:40] for k in body if k not in FIELDS)
    if unknown:
        raise ReplayError(f"unknown field(s): {', '.join(unknown[:5])}")
    source = _text(body, "source", "file")
    speed = body.get("speed", 0)
    if isinstance(speed, str):
        try:
            speed = float(speed) if speed.strip() else 0.0
        except ValueError:
            raise ReplayError("speed must be a number") from None
    if isinstance(speed, bool) or not isinstance(speed, int | float) or not math.isfinite(speed):
        raise ReplayError("speed must be a number")
    learn_every = body.get("learn_every", 3600.0)
    if isinstance(learn_every, str):
        try:
            learn_every = float(learn_every) if learn_every.strip() else 3600.0
        except ValueError:
            raise ReplayError("learn_every must be a number of seconds") from None
    if isinstance(learn_every, bool) or not isinstance(learn_every, int | float):
        raise ReplayError("learn_every must be a number of seconds")
    to_archive = body.get("to_archive", False)
    if not isinstance(to_archive, bool):
        raise ReplayError("to_archive must be true or false")
    encoding = _text(body, "encoding", "utf-8")
    if encoding not in ENCODINGS:
        raise ReplayError(f"encoding must be one of {', '.join(ENCODINGS)}")
    mapping = ColumnMapping(
        text=_text(body, "text_col", "text") or "text",
        id=_text(body, "id_col", "id"),
        author=_text(body, "author_col", "author"),
        created_at=_text(body, "time_col", "created_at"),
        time_format=_text(body, "time_format"),
    )
    return ReplaySpec(
        source=source or "file",
        path=_file_path(_text(body, "file")) if source == "file" else None,
        mapping=mapping,
        encoding=encoding or "utf-8",
        start=parse_time(_text(body, "start"), "start"),
        end=parse_time(_text(body, "end"), "end"),
        topic=_text(body, "topic"),
        speed=float(speed) or None,
        to_archive=to_archive,
        model_version=_text(body, "model_version"),
        learning=_text(body, "learning", "frozen") or "frozen",
        learn_every=float(learn_every),
    ).validated()


@bp.post("/replay/sessions")
@require_role("analyst")
def start():
    try:
        spec = spec_from(request.get_json(silent=True))
        session = manager().start(spec)  # reads (and sorts) the input off the loop first
    except ReplayError as exc:
        return _error(str(exc), exc.status)
    return jsonify(session.status()), 201


@bp.get("/replay/sessions/<session_id>")
@require_role("analyst")
def status(session_id: str):
    try:
        return jsonify(manager().get(session_id).status())
    except ReplayError as exc:
        return _error(str(exc), exc.status)


@bp.post("/replay/sessions/<session_id>/<action>")
@require_role("analyst")
def control(session_id: str, action: str):
    if action not in ("pause", "resume", "stop"):
        return _error("action must be pause, resume or stop", 404)
    try:
        session = manager().get(session_id)
    except ReplayError as exc:
        return _error(str(exc), exc.status)
    getattr(session, action)()
    return jsonify(session.status())
