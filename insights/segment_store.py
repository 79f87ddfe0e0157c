"""Versioned segmentations, kept like the models (models/registry.py): one folder per
refit with a manifest (parameters, metrics, data, library versions, sha256 of every file),
signed with the model key when there is one, and a line in the experiment log.

Layout: `<model dir>/audiences/<version>/{manifest.json, segmentation.joblib}` and
`<model dir>/audiences/experiments.jsonl`. A file whose hash does not match its manifest,
or a manifest whose signature does not match the key, is never unpickled.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib

from insights.audiences import Segmentation
from models.experiments import ExperimentLog
from models.registry import (
    MANIFEST,
    ArtifactError,
    library_versions,
    list_versions,
    new_version,
    read_manifest,
    read_verified,
)
from models.signing import SIGNATURE_FILE, ManifestKey

log = logging.getLogger(__name__)

FOLDER = "audiences"
SEGMENTATION_FILE = "segmentation.joblib"
FORMAT = 1  # bumped when `Segmentation` changes shape


class SegmentStore:
    """The segmentation versions under one model folder.

    Args:
        model_dir: the model folder (segmentations go in its `audiences/` folder).
        key: signs new manifests and verifies them on load (None: unsigned, trusted).
    """

    def __init__(self, model_dir: str | Path, key: ManifestKey | None = None) -> None:
        self.root = Path(model_dir) / FOLDER
        self.key = key
        self.experiments = ExperimentLog(self.root)

    def versions(self) -> list[str]:
        return list_versions(self.root)

    def save(self, segmentation: Segmentation, data: dict[str, Any] | None = None) -> Path:
        """Write `segmentation` as a new version; its folder."""
        version = new_version()
        folder = self.root / version
        tmp = folder.with_name(folder.name + ".partial")
        tmp.mkdir(parents=True, exist_ok=False)
        segmentation.version = version
        buffer = io.BytesIO()
        joblib.dump(segmentation, buffer, compress=3)
        content = buffer.getvalue()
        (tmp / SEGMENTATION_FILE).write_bytes(content)
        metrics = {k: v for k, v in segmentation.metrics.items() if k != "k_curve"}
        manifest = {
            "version": version,
            "kind": "audience-segmentation",
            "format": FORMAT,
            "created_at": datetime.now(UTC).isoformat(),
            "libraries": library_versions(),
            "files": {SEGMENTATION_FILE: hashlib.sha256(content).hexdigest()},
            "params": segmentation.params.to_dict(),
            "metrics": {**metrics, "k_curve": segmentation.metrics.get("k_curve", [])},
            "data": {
                "authors": len(segmentation.labels),
                "posts": segmentation.metrics.get("posts"),
                "fingerprint": _fingerprint(segmentation),
                **(data or {}),
            },
            "segments": [
                {"id": s["id"], "name": s["name"], "size": s["size"]}
                for s in (segmentation.segments[i] for i in segmentation.ids)
            ],
        }
        text = (json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n").encode()
        (tmp / MANIFEST).write_bytes(text)
        if self.key is not None:
            (tmp / SIGNATURE_FILE).write_text(self.key.sign(text) + "\n")
        tmp.rename(folder)  # a version appears whole or not at all
        self.experiments.append(
            {
                "run": version,
                "created_at": manifest["created_at"],
                "kind": "audiences",
                "data": manifest["data"],
                "params": manifest["params"],
                "metrics": metrics,
            }
        )
        log.info("saved segmentation %s (%d segments)", version, len(segmentation.segments))
        return folder

    def load(self, version: str | None = None) -> Segmentation:
        """The newest (or the given) version, after checking signature and hashes.

        Raises:
            ArtifactError: none saved, unknown, tampered with, or of another format.
        """
        versions = self.versions()
        if version is None:
            if not versions:
                raise ArtifactError(f"no segmentation under {self.root}; run `audiences fit`")
            version = versions[-1]
        manifest = read_manifest(self.root, version, self.key)
        if manifest.get("format") != FORMAT or manifest.get("libraries", {}).get(
            "scikit-learn"
        ) != library_versions().get("scikit-learn"):
            raise ArtifactError(
                f"segmentation {version} was saved by another release; refit it "
                "with `socialpulse audiences fit`"
            )
        content = read_verified(self.root, version, SEGMENTATION_FILE, self.key)
        segmentation = joblib.load(io.BytesIO(content))
        if not isinstance(segmentation, Segmentation):
            raise ArtifactError(f"segmentation {version} does not hold a segmentation")
        segmentation.version = version
        return segmentation

    def manifest(self, version: str) -> dict[str, Any]:
        return read_manifest(self.root, version, self.key)


def _fingerprint(segmentation: Segmentation) -> str:
    """A digest of which author is in which segment (the same fit gives the same one)."""
    digest = hashlib.sha256()
    for handle, segment in sorted(segmentation.labels.items()):
        digest.update(f"{handle}\x00{segment}\n".encode())
    return digest.hexdigest()[:16]
