"""Model registry: versions with a manifest, hashes checked before unpickling, safe fallbacks."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from models import datasets, registry
from models.bootstrap import ensure_bundle
from models.clustering import topic_document
from models.featurize import featurize
from models.registry import (
    ARTIFACT_FILES,
    MANIFEST,
    PINNED_LIBRARIES,
    ArtifactError,
    LibraryMismatch,
    ModelBundle,
    library_versions,
    list_versions,
    load_bundle,
    new_version,
    save_bundle,
)

OLD = new_version(datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC))
NEW = new_version(datetime(2025, 6, 7, 8, 9, 10, tzinfo=UTC))


def save_copy(bundle: ModelBundle, root: Path, version: str = "") -> Path:
    """Save the session's models as a new version without touching the session bundle."""
    return save_bundle(ModelBundle(bundle.clusterer, bundle.engagement, version=version), root)


def edit_manifest(folder: Path, **changes) -> None:
    path = folder / MANIFEST
    manifest = json.loads(path.read_text())
    for key, value in changes.items():
        if isinstance(value, dict):
            manifest[key] = {**manifest[key], **value}
        else:
            manifest[key] = value
    path.write_text(json.dumps(manifest))


@pytest.fixture
def root(tmp_path) -> Path:
    return tmp_path / "models"


@pytest.fixture
def load_calls(monkeypatch) -> list[Path]:
    """Every file `joblib.load` opens from here on."""
    calls: list[Path] = []
    real_load = registry.joblib.load

    def spy(path, *args, **kwargs):
        calls.append(Path(path))
        return real_load(path, *args, **kwargs)

    monkeypatch.setattr(registry.joblib, "load", spy)
    return calls


def test_round_trip_keeps_the_models(bundle, root, sample_posts):
    folder = save_copy(bundle, root)
    loaded = load_bundle(root)
    assert loaded.version == folder.name
    assert loaded.manifest == json.loads((folder / MANIFEST).read_text())
    docs = [topic_document(p) for p in sample_posts]
    assert np.array_equal(loaded.clusterer.predict(docs), bundle.clusterer.predict(docs))
    assert loaded.clusterer.labels_ == bundle.clusterer.labels_
    features = featurize(sample_posts, bundle.clusterer).matrix
    assert np.array_equal(
        loaded.engagement.predict_log(features), bundle.engagement.predict_log(features)
    )
    assert loaded.engagement.band_edges_ == bundle.engagement.band_edges_


def test_saving_stamps_the_bundle_with_its_version(bundle, root):
    to_save = ModelBundle(bundle.clusterer, bundle.engagement)
    folder = save_bundle(to_save, root)
    assert to_save.version == folder.name
    assert to_save.manifest["version"] == folder.name


def test_manifest_lists_version_time_libraries_and_file_hashes(bundle, root):
    folder = save_copy(bundle, root)
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["version"] == folder.name
    created = datetime.fromisoformat(manifest["created_at"])
    assert created.tzinfo is not None
    assert abs((datetime.now(UTC) - created).total_seconds()) < 600
    installed = library_versions()
    for name in (*PINNED_LIBRARIES, "python"):
        assert manifest["libraries"][name] == installed[name]
    assert set(manifest["files"]) == set(ARTIFACT_FILES.values())
    for filename, digest in manifest["files"].items():
        assert digest == hashlib.sha256((folder / filename).read_bytes()).hexdigest()


def test_newest_version_is_loaded_unless_one_is_pinned(bundle, root):
    save_copy(bundle, root, NEW)  # written first: "newest" means the version, not the write
    save_copy(bundle, root, OLD)
    assert list_versions(root) == [OLD, NEW]
    assert load_bundle(root).version == NEW
    assert load_bundle(root, OLD).version == OLD
    assert ensure_bundle(root).version == NEW
    assert ensure_bundle(root, OLD).version == OLD


@pytest.mark.parametrize("filename", sorted(ARTIFACT_FILES.values()))
def test_a_flipped_byte_is_refused_before_anything_is_unpickled(bundle, root, load_calls, filename):
    folder = save_copy(bundle, root)
    path = folder / filename
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))

    with pytest.raises(ArtifactError, match=re.escape(filename)) as caught:
        load_bundle(root)
    assert not isinstance(caught.value, LibraryMismatch)
    assert "does not match its manifest" in str(caught.value)
    assert load_calls == [], "no artifact may be unpickled from a version that failed its check"
    # The service refuses too, rather than silently retraining over evidence of tampering.
    with pytest.raises(ArtifactError, match=re.escape(filename)):
        ensure_bundle(root)
    assert load_calls == []
    assert list_versions(root) == [folder.name]


def test_a_missing_file_is_refused(bundle, root, load_calls):
    folder = save_copy(bundle, root)
    (folder / ARTIFACT_FILES["engagement"]).unlink()
    with pytest.raises(ArtifactError, match=re.escape("engagement.joblib")):
        load_bundle(root)
    assert load_calls == []


def test_other_library_versions_are_refused_with_a_clear_message(bundle, root, load_calls):
    folder = save_copy(bundle, root)
    edit_manifest(folder, libraries={"scikit-learn": "0.0.1"})
    with pytest.raises(LibraryMismatch) as caught:
        load_bundle(root)
    message = str(caught.value)
    assert folder.name in message
    assert f"scikit-learn 0.0.1 (installed {library_versions()['scikit-learn']})" in message
    assert "socialpulse train" in message
    assert "numpy" not in message  # only what differs is named
    assert load_calls == []


def test_another_artifact_format_is_refused(bundle, root):
    folder = save_copy(bundle, root)
    edit_manifest(folder, format=registry.ARTIFACT_FORMAT + 1)
    with pytest.raises(LibraryMismatch, match="artifact format"):
        load_bundle(root)


def test_ensure_bundle_retrains_when_libraries_changed(bundle, root, monkeypatch):
    monkeypatch.setattr(datasets, "DEFAULT_TRAINING_POSTS", 600)  # keep the retrain quick
    folder = save_copy(bundle, root, OLD)
    edit_manifest(folder, libraries={"numpy": "1.0.0"})

    with pytest.raises(LibraryMismatch):  # a pinned version is never replaced
        ensure_bundle(root, OLD)
    assert list_versions(root) == [OLD]

    retrained = ensure_bundle(root)
    assert retrained.version != OLD
    assert list_versions(root) == [OLD, retrained.version]
    assert load_bundle(root).version == retrained.version
    assert retrained.manifest["libraries"] == library_versions()
    assert retrained.clusterer.predict(["Great game #nba"]).shape == (1,)


def test_a_missing_pinned_version_is_an_error(bundle, root):
    save_copy(bundle, root, OLD)
    with pytest.raises(ArtifactError, match=NEW):
        load_bundle(root, NEW)
    with pytest.raises(ArtifactError, match=NEW):
        ensure_bundle(root, NEW)
    assert list_versions(root) == [OLD]


def test_no_versions_at_all_says_how_to_train(root):
    with pytest.raises(ArtifactError, match="socialpulse train"):
        load_bundle(root)


def test_partially_written_versions_are_ignored(bundle, root):
    complete = save_copy(bundle, root, OLD)
    # A save interrupted after its manifest was written, but before the folder was renamed.
    shutil.copytree(complete, root / f"{NEW}.partial")
    # One interrupted earlier, with no manifest yet.
    (root / f"{NEW}X.partial").mkdir()
    assert list_versions(root) == [OLD]
    assert load_bundle(root).version == OLD
    assert ensure_bundle(root).version == OLD


def test_a_save_that_fails_midway_leaves_the_previous_version_in_use(bundle, root, monkeypatch):
    save_copy(bundle, root, OLD)
    real_dump = registry.joblib.dump

    def dump_then_fail(value, path, *args, **kwargs):
        if Path(path).name == ARTIFACT_FILES["engagement"]:
            raise OSError("disk full")
        return real_dump(value, path, *args, **kwargs)

    monkeypatch.setattr(registry.joblib, "dump", dump_then_fail)
    with pytest.raises(OSError, match="disk full"):
        save_copy(bundle, root, NEW)
    assert (root / f"{NEW}.partial").is_dir()
    assert list_versions(root) == [OLD]
    assert load_bundle(root).version == OLD
