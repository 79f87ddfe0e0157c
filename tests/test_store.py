"""The model store a worker scores with: load, switch to newer versions, publish what it learned."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys

import pytest

from app.config import PROJECT_ROOT
from models.registry import MANIFEST, list_versions
from models.store import ModelStore
from streaming.runner import StreamRunner
from streaming.sinks import ListSink
from streaming.sources import ListSource


@pytest.fixture
def root(tmp_path, bundle, model_dir):
    folder = tmp_path / "models"
    shutil.copytree(model_dir / bundle.version, folder / bundle.version)
    return folder


def test_load_gives_the_newest_version_and_newer_finds_nothing_newer(root, bundle):
    store = ModelStore(root)
    pipeline = store.load()
    assert pipeline.model_version == bundle.version
    assert store.newer(pipeline.model_version) is None


def test_publish_saves_a_new_version_that_other_workers_switch_to(root, bundle, sample_posts):
    learner, follower = ModelStore(root), ModelStore(root)
    learning = learner.load()
    learning.score_batch(sample_posts, learn=True)
    published = learner.publish(learning)
    assert published.model_version != bundle.version
    assert list_versions(root) == [bundle.version, published.model_version]
    assert published.clusterer is learning.clusterer  # the same models, under the new name
    assert learning.model_version == bundle.version  # the old pipeline is left as it was
    assert published.score_batch(sample_posts[:1])[0].model_version == published.model_version

    switched = follower.newer(bundle.version)
    assert switched is not None and switched.model_version == published.model_version
    assert follower.newer(published.model_version) is None


def test_a_pinned_store_never_switches(root, bundle, sample_posts):
    learner = ModelStore(root)
    learner.publish(learner.load())
    pinned = ModelStore(root, pinned_version=bundle.version)
    assert pinned.load().model_version == bundle.version
    assert pinned.newer(bundle.version) is None


def test_a_broken_newer_version_is_logged_and_the_current_one_kept(root, bundle, caplog):
    store = ModelStore(root)
    newest = store.publish(store.load()).model_version
    (root / newest / MANIFEST).write_text("{not json")
    with caplog.at_level(logging.ERROR, logger="models.store"):
        assert store.newer(bundle.version) is None
    assert f"cannot load model version {newest}" in caplog.text


def test_the_runner_scores_with_the_scorer_it_is_given(root, bundle, raw_posts):
    store = ModelStore(root)
    first = store.load()
    sink = ListSink()
    runner = StreamRunner(ListSource(raw_posts[:4]), first, [sink], batch_max_posts=2)
    runner.run_once()
    runner.use_scorer(store.publish(first))
    runner.run_once()
    versions = [s.model_version for s in sink.scored]
    assert versions[:2] == [bundle.version] * 2
    assert versions[2:] == [list_versions(root)[-1]] * 2 != versions[:2]


def test_loading_a_saved_version_never_imports_the_training_code(root):
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from models.store import ModelStore\n"
        f"ModelStore(Path({str(root)!r})).load()\n"
        "assert 'models.training' not in sys.modules, 'training code was imported'\n"
        "assert 'models.datasets' not in sys.modules, 'data-set code was imported'\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
