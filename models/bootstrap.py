"""Models on first start: load the pinned or newest version, or train defaults when none fits.

Loading never imports the training code; only training defaults does.
"""

from __future__ import annotations

import gc
import logging
from pathlib import Path

from models.registry import ArtifactError, LibraryMismatch, ModelBundle, list_versions, load_bundle
from models.signing import ManifestKey

log = logging.getLogger(__name__)


def train_default_bundle(root: Path, seed: int = 0, key: ManifestKey | None = None) -> ModelBundle:
    """Train on synthetic posts (a few seconds) and save a new version under `root`."""
    from models.datasets import DEFAULT_TRAINING_POSTS, synthetic_dataset
    from models.training import TrainingOptions, save_result, train

    dataset = synthetic_dataset(DEFAULT_TRAINING_POSTS, seed=seed + 11)
    # The live synthetic stream has other authors than these posts: no author features.
    options = TrainingOptions(
        model="rf", search=False, seed=seed, author_window=0, forest={"baseline": "none"}
    )
    result = train(dataset, options)
    save_result(result, root, key=key)
    log.info("trained default models: held-out %s", result.metrics["engagement_holdout"])
    # Training leaves many dead objects behind and advances the collector's generations;
    # one full collection now keeps it out of the first live batches scored right after.
    gc.collect()
    return result.bundle


def ensure_bundle(
    root: Path,
    version: str | None = None,
    seed: int = 0,
    key: ManifestKey | None = None,
    refused: list[tuple[str, str]] | None = None,
) -> ModelBundle:
    """Load the pinned or newest usable version; train defaults when there is none.

    A pinned version is never replaced: problems with it are raised. A version that is
    unsigned, signed with another key, or tampered with is skipped for the newest good one
    before it, and noted in `refused` as (version, reason); when none is good, that is an
    error (defaults are never trained over evidence of tampering). Defaults are trained when
    there is no version, or when the newest was saved with other library versions.

    Raises:
        ArtifactError: the pinned version cannot be loaded, or no version can be trusted.
    """
    if version is not None:
        return load_bundle(root, version, key)
    versions = list_versions(root)
    if not versions:
        log.info("no models under %s yet: training defaults on synthetic posts", root)
    skipped: list[tuple[str, str]] = []
    for candidate in reversed(versions):
        try:
            bundle = load_bundle(root, candidate, key)
        except LibraryMismatch as exc:  # older versions were saved with older libraries too
            log.warning("%s; retraining defaults", exc)
            break
        except ArtifactError as exc:
            log.error("%s", exc)
            skipped.append((candidate, str(exc)))
            continue
        if skipped:
            log.warning("scoring with model version %s, the newest one trusted", candidate)
        if refused is not None:
            refused.extend(skipped)
        return bundle
    else:
        if skipped:
            raise ArtifactError(
                f"no model version under {root} can be trusted ({skipped[0][1]}); retrain "
                "with `socialpulse train`, or restore the files and their key"
            )
    return train_default_bundle(root, seed=seed, key=key)
