"""Versioned model artifacts with a manifest, verified by sha256 before anything is unpickled.

joblib (pickle) runs code while loading, so a file whose hash does not match the manifest is
never opened, and a manifest whose signature does not match the key (`models.signing`) is
not trusted at all. A version trained with other library versions is refused with a clear message.
Every other file of a version (the Keras network, the evaluation arrays, the HTML report) is
listed with its hash too, and read only through `read_verified`.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import platform
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib

from models.calibrated_sentiment import VaderFallbackSentimentModel
from models.clustering import StreamingTopicClusterer
from models.engagement import EngagementModel
from models.pipeline import ScoringPipeline
from models.sentiment import VaderSentimentModel
from models.signing import SIGNATURE_FILE, ManifestKey

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
ARTIFACT_FILES = {"clusterer": "clusterer.joblib", "engagement": "engagement.joblib"}
# Optional files of a version (written by `socialpulse train`).
NEURAL_FILE = "engagement_nn.keras"  # Keras native format, loaded with safe_mode
EVALUATION_FILE = "evaluation.npz"  # held-out predictions etc., loaded without pickle
# The calibrated sentiment model, hash-checked like the others. Versions saved before it
# existed have none and score with `VaderFallbackSentimentModel`.
SENTIMENT_FILE = "sentiment.joblib"
REPORT_FILE = "report.html"
# Libraries whose version must match for a pickled model to load the same way.
PINNED_LIBRARIES = ("scikit-learn", "numpy", "scipy", "joblib")
# Bumped whenever the pickled classes change shape, so old artifacts are retrained, not misread.
# 3: author features and `EngagementModel.author_prior_`, `baseline`, `intercept_`.
# 4: topics that follow the stream: `ClusterState.ids`/`unit`, the clusterer's lineage.
# 5: the calibrated sentiment model reads words only, no bigrams.
ARTIFACT_FORMAT = 5


class ArtifactError(RuntimeError):
    """A model version that is missing, tampered with, or built with other libraries."""


class UntrustedVersion(ArtifactError):
    """The manifest is unsigned, or signed with another key."""


class LibraryMismatch(ArtifactError):
    """The artifacts were saved with other library versions than the ones installed."""


@dataclass
class ModelBundle:
    """The fitted models of one version, with its manifest."""

    clusterer: StreamingTopicClusterer
    engagement: EngagementModel
    version: str = ""
    manifest: dict[str, Any] = field(default_factory=dict)
    # The calibrated sentiment model; None: VADER's label with a measured probability.
    sentiment: VaderSentimentModel | None = None

    def pipeline(self) -> ScoringPipeline:
        """A live scoring pipeline on this version's models."""
        sentiment = self.sentiment or VaderFallbackSentimentModel()
        return ScoringPipeline(self.clusterer, self.engagement, self.version, sentiment)


def library_versions() -> dict[str, str]:
    from importlib.metadata import version

    versions = {name: version(name) for name in PINNED_LIBRARIES}
    versions["python"] = platform.python_version()
    return versions


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def new_version(now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    return now.strftime("%Y%m%dT%H%M%S%fZ")


def save_bundle(
    bundle: ModelBundle,
    root: Path,
    extra_manifest: dict[str, Any] | None = None,
    extra_files: Mapping[str, bytes] | None = None,
    extra_libraries: Mapping[str, str] | None = None,
    key: ManifestKey | None = None,
) -> Path:
    """Write the bundle as a new version folder under `root` and return its path.

    Args:
        bundle: the fitted models.
        root: the model folder.
        extra_manifest: more manifest entries (data, params, metrics).
        extra_files: more files of the version, by name; hashed like the models.
        extra_libraries: versions of further libraries the files need (e.g. TensorFlow).
        key: signs the manifest (None: unsigned, which only an unverified load accepts).
    """
    version = bundle.version or new_version()
    folder = Path(root) / version
    tmp = folder.with_name(folder.name + ".partial")
    tmp.mkdir(parents=True, exist_ok=False)
    files = {}
    for attribute, filename in ARTIFACT_FILES.items():
        path = tmp / filename
        joblib.dump(getattr(bundle, attribute), path, compress=3)
        files[filename] = sha256_file(path)
    if bundle.sentiment is not None:
        path = tmp / SENTIMENT_FILE
        joblib.dump(bundle.sentiment, path, compress=3)
        files[SENTIMENT_FILE] = sha256_file(path)
    for filename, content in (extra_files or {}).items():
        if filename in files or filename == MANIFEST or Path(filename).name != filename:
            raise ValueError(f"cannot add a file named {filename!r} to a version")
        (tmp / filename).write_bytes(content)
        files[filename] = hashlib.sha256(content).hexdigest()
    manifest = {
        "version": version,
        "format": ARTIFACT_FORMAT,
        "created_at": datetime.now(UTC).isoformat(),
        "libraries": {**library_versions(), **(extra_libraries or {})},
        "files": files,
        **(extra_manifest or {}),
    }
    content = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    (tmp / MANIFEST).write_bytes(content)
    if key is not None:
        (tmp / SIGNATURE_FILE).write_text(key.sign(content) + "\n")
    tmp.rename(folder)  # a version folder appears whole or not at all
    bundle.version, bundle.manifest = version, manifest
    log.info("saved model version %s to %s", version, folder)
    return folder


def list_versions(root: Path) -> list[str]:
    """Complete versions under `root`, oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(
        p.name
        for p in root.iterdir()
        if not p.name.endswith(".partial") and (p / MANIFEST).is_file()
    )


def read_manifest(root: Path, version: str, key: ManifestKey | None = None) -> dict[str, Any]:
    """The manifest of `version`, after checking its signature against `key` (None: the
    caller trusts the folder, as tests and benchmarks on their own temporary folders do).

    Raises:
        UntrustedVersion: unsigned, or signed with another key.
        ArtifactError: unreadable.
    """
    path = Path(root) / version / MANIFEST
    try:
        content = path.read_bytes()
        if key is not None:
            signature = path.with_name(SIGNATURE_FILE)
            if not signature.is_file():
                raise UntrustedVersion(f"model version {version} is not signed; refusing it")
            if not key.verify(content, signature.read_text()):
                raise UntrustedVersion(
                    f"model version {version} is signed with another key, or was changed "
                    "after signing; refusing it"
                )
        return json.loads(content)
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"cannot read {path}: {exc}") from exc


def _verified_bytes(folder: Path, manifest: dict[str, Any], filename: str) -> bytes:
    expected = manifest.get("files", {}).get(filename)
    path = folder / filename
    if expected is None or not path.is_file():
        raise ArtifactError(f"{path} is missing or not listed in the manifest")
    content = path.read_bytes()
    actual = hashlib.sha256(content).hexdigest()
    if actual != expected:
        raise ArtifactError(
            f"{path} does not match its manifest (sha256 {actual[:12]}…, expected "
            f"{expected[:12]}…); refusing to load it. Retrain or restore the file."
        )
    return content


def read_verified(root: Path, version: str, filename: str, key: ManifestKey | None = None) -> bytes:
    """The bytes of one file of a version, after checking them against the manifest.

    Callers use these bytes, never the file again, so nothing unchecked is ever loaded.

    Raises:
        ArtifactError: unknown version, file missing or not listed, or hash mismatch.
    """
    if version not in list_versions(root):
        raise ArtifactError(f"model version {version!r} not found under {root}")
    return _verified_bytes(Path(root) / version, read_manifest(root, version, key), filename)


def has_file(root: Path, version: str, filename: str, key: ManifestKey | None = None) -> bool:
    """Whether the trusted manifest of `version` lists `filename` (not whether it is intact)."""
    try:
        return filename in read_manifest(root, version, key).get("files", {})
    except ArtifactError:
        return False


def load_neural(root: Path, version: str, key: ManifestKey | None = None):
    """The version's Keras network (`NeuralEngagementModel`), hash-checked before loading.

    Raises:
        ArtifactError: no network in this version, or its file fails the check.
        NeuralUnavailable: TensorFlow is not installed.
    """
    from models.neural import NeuralEngagementModel

    manifest = read_manifest(root, version, key)
    if NEURAL_FILE not in manifest.get("files", {}):
        raise ArtifactError(f"model version {version} has no neural network (--model nn)")
    content = read_verified(root, version, NEURAL_FILE, key)
    return NeuralEngagementModel.from_bytes(content, manifest.get("params", {}).get("neural"))


def load_evaluation(root: Path, version: str, key: ManifestKey | None = None) -> dict[str, Any]:
    """The version's evaluation arrays, hash-checked, read without pickle."""
    import numpy as np

    content = read_verified(root, version, EVALUATION_FILE, key)
    with np.load(io.BytesIO(content), allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def load_bundle(
    root: Path, version: str | None = None, key: ManifestKey | None = None
) -> ModelBundle:
    """Load `version` (default: the newest) after checking the manifest's signature (with
    `key`), library versions and file hashes."""
    versions = list_versions(root)
    if version is None:
        if not versions:
            raise ArtifactError(f"no model versions under {root}; run `socialpulse train`")
        version = versions[-1]
    elif version not in versions:
        raise ArtifactError(f"model version {version!r} not found under {root}")
    manifest = read_manifest(root, version, key)
    folder = Path(root) / version

    installed = library_versions()
    saved = manifest.get("libraries", {})
    mismatched = [
        f"{name} {saved.get(name)} (installed {installed[name]})"
        for name in PINNED_LIBRARIES
        if saved.get(name) != installed[name]
    ]
    if manifest.get("format") != ARTIFACT_FORMAT:
        mismatched.append(
            f"artifact format {manifest.get('format')} (this release reads {ARTIFACT_FORMAT})"
        )
    if mismatched:
        raise LibraryMismatch(
            f"model version {version} was saved with "
            + ", ".join(mismatched)
            + "; retrain with `socialpulse train` or install the matching versions"
        )

    # Every file is checked before any is unpickled: one bad file taints the whole version.
    # The bytes that were hashed are the bytes unpickled, so a file swapped in between the
    # check and the load cannot slip through.
    parts = dict(ARTIFACT_FILES)
    if SENTIMENT_FILE in manifest.get("files", {}):
        parts["sentiment"] = SENTIMENT_FILE
    verified = {
        part: _verified_bytes(folder, manifest, filename) for part, filename in parts.items()
    }
    loaded = {part: joblib.load(io.BytesIO(content)) for part, content in verified.items()}
    return ModelBundle(
        clusterer=loaded["clusterer"],
        engagement=loaded["engagement"],
        version=version,
        manifest=manifest,
        sentiment=loaded.get("sentiment"),
    )
