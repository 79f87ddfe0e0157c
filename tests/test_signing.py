"""Signed manifests: a rewritten file with a rewritten hash is refused without the key; the
service falls back to the newest version it can trust, and says so."""

from __future__ import annotations

import hashlib
import json
import stat
import subprocess
import sys
from pathlib import Path

import joblib
import pytest

from app import create_app
from app.config import Config
from app.testing import ROOT, run_config, run_manifest_key
from models.bootstrap import ensure_bundle
from models.registry import (
    MANIFEST,
    ArtifactError,
    ModelBundle,
    UntrustedVersion,
    load_bundle,
    new_version,
    save_bundle,
)
from models.signing import SIGNATURE_FILE, ManifestKey, secret_file
from models.store import ModelStore

KEY = run_manifest_key()
OTHER = ManifestKey(b"another deployment's signing key")


def save(bundle: ModelBundle, root: Path, key: ManifestKey | None = KEY, version="") -> Path:
    return save_bundle(
        ModelBundle(bundle.clusterer, bundle.engagement, version=version), root, key=key
    )


@pytest.fixture
def unpickled(monkeypatch) -> list[str]:
    """Every joblib load, so a test can check that nothing was unpickled."""
    calls: list[str] = []
    original = joblib.load
    monkeypatch.setattr(joblib, "load", lambda *a, **k: calls.append("load") or original(*a, **k))
    return calls


def rewrite_like_an_attacker(folder: Path) -> None:
    """Swap a model file and put its new hash in the manifest: all an attacker without the
    key can do."""
    path = folder / "engagement.joblib"
    path.write_bytes(path.read_bytes() + b"\x00")
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["files"]["engagement.joblib"] = hashlib.sha256(path.read_bytes()).hexdigest()
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def test_a_signed_version_loads_with_its_key(bundle, tmp_path):
    folder = save(bundle, tmp_path)
    assert (folder / SIGNATURE_FILE).is_file()
    assert load_bundle(tmp_path, key=KEY).version == folder.name


def test_a_rewritten_file_and_hash_are_refused_before_anything_is_unpickled(
    bundle, tmp_path, unpickled
):
    folder = save(bundle, tmp_path)
    rewrite_like_an_attacker(folder)
    with pytest.raises(UntrustedVersion) as refused:
        load_bundle(tmp_path, key=KEY)
    assert "\n" not in str(refused.value) and folder.name in str(refused.value)
    assert unpickled == []


@pytest.mark.parametrize(
    "key, message",
    [(None, "is not signed"), (OTHER, "signed with another key")],
    ids=["unsigned", "other key"],
)
def test_unsigned_or_foreign_versions_are_refused(bundle, tmp_path, unpickled, key, message):
    save(bundle, tmp_path, key=key)
    with pytest.raises(UntrustedVersion, match=message):
        load_bundle(tmp_path, key=KEY)
    assert unpickled == []


def test_the_newest_trusted_version_is_used_and_the_refusal_noted(bundle, tmp_path):
    from datetime import UTC, datetime

    good = save(bundle, tmp_path, version=new_version(datetime(2024, 1, 1, tzinfo=UTC)))
    bad = save(bundle, tmp_path, version=new_version(datetime(2025, 1, 1, tzinfo=UTC)))
    rewrite_like_an_attacker(bad)
    store = ModelStore(tmp_path, key=KEY)
    assert store.load().model_version == good.name
    ((version, reason),) = store.refused
    assert version == bad.name and "changed after signing" in reason


def test_no_trusted_version_is_an_error_not_a_silent_retrain(bundle, tmp_path):
    rewrite_like_an_attacker(save(bundle, tmp_path))
    with pytest.raises(ArtifactError, match="can be trusted"):
        ensure_bundle(tmp_path, key=KEY)
    assert len(list(tmp_path.iterdir())) == 1  # nothing trained over it


def test_the_service_says_which_version_it_refused(bundle, tmp_path):
    from datetime import UTC, datetime

    root = tmp_path / "models"
    good = save(bundle, root, version=new_version(datetime(2024, 1, 1, tzinfo=UTC)))
    bad = save(bundle, root, version=new_version(datetime(2025, 1, 1, tzinfo=UTC)))
    rewrite_like_an_attacker(bad)
    config = run_config(root, tmp_path / "instance")
    client = create_app(config).test_client()
    ready = client.get("/readyz")
    assert ready.status_code == 200  # serving, on the older version
    (warning,) = ready.get_json()["warnings"]
    assert bad.name in warning and good.name in warning
    page = client.get("/models").get_data(as_text=True)
    assert 'id="refused-models"' in page and bad.name in page


def test_serve_without_a_trusted_version_fails_in_one_line(bundle, tmp_path, monkeypatch):
    root = tmp_path / "models"
    rewrite_like_an_attacker(save(bundle, root))
    monkeypatch.setenv("SOCIALPULSE_MODEL_DIR", str(root))
    monkeypatch.setenv("SOCIALPULSE_INSTANCE_DIR", str(tmp_path / "instance"))
    # In its own process: serving turns the process over to gevent.
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "serve", "--port", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 1
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("Error: no model version under"), result.stderr[-2000:]
    assert "Traceback" not in result.stderr


def test_the_default_key_file_is_created_private_and_kept(tmp_path):
    path = tmp_path / "instance" / "model_signing.key"
    first = Config.from_env(environ={}, instance_dir=str(tmp_path / "instance")).manifest_key()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = ManifestKey.from_file(path)
    assert again.sign(b"manifest") == first.sign(b"manifest")
    assert OTHER.sign(b"manifest") != first.sign(b"manifest")


def test_a_short_key_is_refused():
    with pytest.raises(ValueError, match="at least 16 bytes"):
        ManifestKey(b"short")


def test_processes_starting_together_share_one_secret(tmp_path):
    """Web nodes and workers sharing an instance folder may all start at once: each must
    read the same key, never an empty or half-written file."""
    from concurrent.futures import ProcessPoolExecutor

    path = tmp_path / "instance" / "secret_key"
    with ProcessPoolExecutor(8) as pool:
        secrets_read = set(pool.map(secret_file, [path] * 64))
    assert len(secrets_read) == 1 and len(secrets_read.pop()) == 64
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["secret_key"]
