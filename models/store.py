"""The model versions a worker or web node scores with, kept in one shared folder.

`ModelStore` is what the Kafka worker knows of models (through its scorer-store protocol):
the current scorer, a newer published version, and publishing online-updated models.
"""

from __future__ import annotations

import logging
from pathlib import Path

from models.bootstrap import ensure_bundle
from models.pipeline import ScoringPipeline
from models.registry import ModelBundle, list_versions, load_bundle, save_bundle
from models.signing import ManifestKey

log = logging.getLogger(__name__)


class ModelStore:
    """Scoring pipelines from the versions under `root`.

    Args:
        root: the shared folder of model versions.
        pinned_version: always score with this version (never switch or retrain).
        seed: seed of default models trained when the folder has none usable.
        key: verifies (and signs) the versions' manifests.

    Attributes:
        refused: (version, reason) of the versions skipped as unsigned or tampered with.
    """

    def __init__(
        self,
        root: str | Path,
        pinned_version: str | None = None,
        seed: int = 0,
        key: ManifestKey | None = None,
    ):
        self.root = Path(root)
        self.pinned_version = pinned_version
        self.seed = seed
        self.key = key
        self.refused: list[tuple[str, str]] = []

    def load(self) -> ScoringPipeline:
        """The pinned or newest good version (default models are trained when none is)."""
        self.refused = []
        bundle = ensure_bundle(
            self.root, self.pinned_version, seed=self.seed, key=self.key, refused=self.refused
        )
        return bundle.pipeline()

    def newer(self, current_version: str) -> ScoringPipeline | None:
        """A pipeline of a version newer than `current_version`, if one was published."""
        versions = list_versions(self.root)
        if self.pinned_version or not versions or versions[-1] <= current_version:
            return None
        try:
            bundle = load_bundle(self.root, versions[-1], self.key)
        except Exception as exc:  # keep scoring with the current version
            if not any(version == versions[-1] for version, _ in self.refused):
                log.error("cannot load model version %s: %s", versions[-1], exc)
                self.refused.append((versions[-1], str(exc)))
            return None
        log.info("switching to model version %s", bundle.version)
        return bundle.pipeline()

    def publish(self, pipeline: ScoringPipeline) -> ScoringPipeline:
        """Save the (online-updated) models as a new version; the pipeline under its name."""
        bundle = ModelBundle(pipeline.clusterer, pipeline.engagement, sentiment=pipeline.sentiment)
        save_bundle(
            bundle,
            self.root,
            {"data": {"source": "online", "parent": pipeline.model_version}},
            key=self.key,
        )
        log.info("published model version %s", bundle.version)
        return pipeline.with_version(bundle.version)
