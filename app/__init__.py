"""SocialPulse web app: `create_app(config)` builds one instance; nothing runs at import.

`create_app` is imported on first use, so commands that never build the web app (`--help`,
`worker`, `produce`, `train`) do not load Flask and the models to start.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from app.factory import create_app

        return create_app
    raise AttributeError(f"module 'app' has no attribute {name!r}")
