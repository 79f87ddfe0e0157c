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


class ManifestKey:
    """Signs and verifies manifest bytes."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("a model signing key needs at least 16 bytes")
        self._secret = secret

    @classmethod
    def from_file(cls, path: str | Path) -> ManifestKey:
        """The key in `path`, created (random, readable by its owner only) when missing."""
        path = Path(path)
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as handle:
                handle.write(secrets.token_hex(32) + "\n")
        return cls(path.read_text().strip().encode())

    def sign(self, manifest: bytes) -> str:
        return hmac.new(self._secret, manifest, hashlib.sha256).hexdigest()

    def verify(self, manifest: bytes, signature: str) -> bool:
        return hmac.compare_digest(self.sign(manifest), signature.strip())
