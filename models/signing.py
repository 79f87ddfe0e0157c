"""Signed manifests: an HMAC-SHA256 of each version's manifest, with a key kept outside the
model folder.

The manifest lists the sha256 of every file of a version, and loading a version unpickles
files (which runs code). Hashes alone stop accidents, not an attacker who rewrites a file
and its hash; the signature binds the manifest to a key such a person does not have.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

SIGNATURE_FILE = "manifest.sig"


def secret_file(path: Path) -> str:
    """The secret kept in `path`, created (random, readable by its owner only) when missing.
    Safe when several processes start at once: the file appears whole (a hard link of a
    finished file), and every process reads the one that won."""
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_hex(32) + "\n")
        try:
            os.link(draft, path)
        except FileExistsError:
            pass  # another process was first: its secret is the one
        finally:
            draft.unlink()
    return path.read_text().strip()


class ManifestKey:
    """Signs and verifies manifest bytes."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("a model signing key needs at least 16 bytes")
        self._secret = secret

    @classmethod
    def from_file(cls, path: str | Path) -> ManifestKey:
        """The key in `path`, created (random, readable by its owner only) when missing."""
        return cls(secret_file(Path(path)).encode())

    def sign(self, manifest: bytes) -> str:
        return hmac.new(self._secret, manifest, hashlib.sha256).hexdigest()

    def verify(self, manifest: bytes, signature: str) -> bool:
        return hmac.compare_digest(self.sign(manifest), signature.strip())
