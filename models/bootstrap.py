"""Models on first start: load the pinned or newest version, or train defaults when none fits.

Loading never imports the training code; only training defaults does.
"""

from __future__ import annotations

import gc
import logging
from pathlib import Path

from models.registry import LibraryMismatch, ModelBundle, list_versions, load_bundle

log = logging.getLogger(__name__)


def train_default_bundle(root: Path, seed: int = 0) -> ModelBundle:
    """Train on synthetic posts (a few seconds) and save a new version under `root`."""
    from models.datasets import DEFAULT_TRAINING_POSTS, synthetic_dataset
    from models.training import TrainingOptions, save_result, train

    dataset = synthetic_dataset(DEFAULT_TRAINING_POSTS, seed=seed + 11)
    # The live synthetic stream has other authors than these posts: no author features.
    options = TrainingOptions(
        model="rf", search=False, seed=seed, author_window=0, forest={"baseline": "none"}
    )
    result = train(dataset, options)
    save_result(result, root)
    log.info("trained default models: held-out %s", result.metrics["engagement_holdout"])
    # Training leaves many dead objects behind and advances the collector's generations;
    # one full collection now keeps it out of the first live batches scored right after.
    gc.collect()
    return result.bundle


def ensure_bundle(root: Path, version: str | None = None, seed: int = 0) -> ModelBundle:
    """Load the pinned or newest version; train defaults when there is none usable.

    A pinned version is never replaced: problems with it are raised. The newest version is
    retrained when it was saved with other library versions; a tampered file is refused.
    """
    if version is not None:
        return load_bundle(root, version)
    if not list_versions(root):
        log.info("no models under %s yet: training defaults on synthetic posts", root)
        return train_default_bundle(root, seed=seed)
    try:
        return load_bundle(root)
    except LibraryMismatch as exc:
        log.warning("%s; retraining defaults", exc)
        return train_default_bundle(root, seed=seed)
