"""Topic clustering: what the clusterer reads, readable labels, stable ids, online learning."""

from __future__ import annotations

import copy
import pickle
from collections import Counter

import numpy as np
import pytest

from models.clustering import FastTfidfVectorizer, StreamingTopicClusterer, topic_document
from streaming.records import Post, parse_post
from streaming.synthetic import TOPICS, TRAINING_START, SyntheticPostGenerator, strip_private

TOPIC_OF_TAG = {tag: topic.name for topic in TOPICS for tag in topic.hashtags}


def synthetic(seed: int, n: int) -> tuple[list[Post], list[str]]:
    """Posts from the generator and the topic each was written about."""
    raws = SyntheticPostGenerator(seed=seed, start=TRAINING_START, rate=0.05).take(n)
    return [parse_post(strip_private(r)) for r in raws], [r["_topic"] for r in raws]


def docs_of(posts: list[Post]) -> list[str]:
    return [topic_document(p) for p in posts]


@pytest.fixture(scope="module")
def labelled_docs() -> tuple[list[str], list[str]]:
    posts, topics = synthetic(seed=41, n=1500)
    return docs_of(posts), topics


@pytest.fixture
def clusterer(bundle) -> StreamingTopicClusterer:
    """The default fitted clusterer, copied so that learning in a test stays in that test."""
    return copy.deepcopy(bundle.clusterer)


@pytest.fixture(scope="module")
def fitted_fixed() -> StreamingTopicClusterer:
    """Twelve topics fitted on the default training posts."""
    from models.datasets import DEFAULT_TRAINING_POSTS, synthetic_dataset

    dataset = synthetic_dataset(DEFAULT_TRAINING_POSTS, seed=11)
    return StreamingTopicClusterer(n_clusters=12).fit(docs_of(dataset.posts))


@pytest.fixture
def fixed_clusterer(fitted_fixed) -> StreamingTopicClusterer:
    """A clusterer with a fixed number of topics, copied per test."""
    return copy.deepcopy(fitted_fixed)


@pytest.fixture(params=["auto", "fixed"])
def any_clusterer(request, clusterer, fitted_fixed) -> StreamingTopicClusterer:
    """The default (automatic number of topics) and a fixed-k clusterer."""
    return clusterer if request.param == "auto" else copy.deepcopy(fitted_fixed)


@pytest.fixture(scope="module")
def small_clusterer() -> StreamingTopicClusterer:
    posts, _ = synthetic(seed=5, n=400)
    return StreamingTopicClusterer(
        n_clusters=6, window_size=400, refit_every=0, learn_batch_size=100, n_init=1
    ).fit(docs_of(posts))


# -- what the clusterer reads ------------------------------------------------------------------
def test_topic_document_drops_urls_and_mentions_and_appends_hashtags():
    post = parse_post(
        {
            "text": "@Coach_Kim Loved the dunk https://sp.example/clip?t=12 so good #NBA",
        }
    )
    doc = topic_document(post)
    assert "http" not in doc
    assert "sp.example" not in doc
    assert "@" not in doc
    assert "Coach_Kim" not in doc
    assert "Loved the dunk" in doc
    assert "so good" in doc
    assert doc.endswith(" #nba")


def test_topic_document_appends_hashtags_sent_outside_the_text():
    post = parse_post({"text": "New paper out today", "hashtags": ["#LLM", "DataScience"]})
    assert topic_document(post) == "New paper out today #llm #datascience"


def test_topic_document_keeps_plain_text_as_written():
    post = parse_post({"text": "Brunch at the new cafe, e-mail me at me@cafe.example"})
    assert topic_document(post) == post.text


def test_hashtags_outweigh_urls_and_mentions(clusterer):
    """Two posts about the same topic with other handles and links land in the same cluster."""
    a, b = (
        parse_post({"text": f"@{who} Great game tonight {url} #nba #lakers #playoffs"})
        for who, url in (("ann", "https://a.example/x"), ("bob", "https://b.example/yy/zz"))
    )
    assert clusterer.predict([topic_document(a)])[0] == clusterer.predict([topic_document(b)])[0]


# -- labels --------------------------------------------------------------------------------
def test_labels_are_readable_and_name_topics_by_their_hashtags(any_clusterer, labelled_docs):
    clusterer = any_clusterer
    labels = clusterer.labels_
    assert len(labels) == len(clusterer.cluster_ids_)
    for label in labels:
        assert label.strip()
        assert label != "(empty)"
    docs, topics = labelled_docs
    ids = clusterer.predict(docs)
    for topic in TOPICS:
        tagged = [
            i for i, t, d in zip(ids, topics, docs, strict=True) if t == topic.name and "#" in d
        ]
        main_cluster = Counter(tagged).most_common(1)[0][0]
        label = clusterer.label_of(main_cluster)
        label_tags = {part.lstrip("#") for part in label.split(" · ")}
        assert label_tags & set(topic.hashtags), (topic.name, label)


def test_top_terms_of_a_cluster_match_its_label(any_clusterer):
    clusterer = any_clusterer
    for cluster_id, label in zip(clusterer.cluster_ids_, clusterer.labels_, strict=True):
        terms = clusterer.top_terms(cluster_id, n=12)
        assert terms
        assert set(label.split(" · ")) <= set(terms)


# -- stable ids ------------------------------------------------------------------------------
NEW_WORDS = ("quantum", "zeppelin", "marmalade", "kraken", "nebula", "falafel")


def test_cluster_ids_and_meanings_survive_learning_and_refits(any_clusterer, labelled_docs):
    clusterer = any_clusterer
    docs, _ = labelled_docs
    fixed = docs[:600]
    before = clusterer.predict(fixed)
    top_tag_before = {
        cid: label.split(" · ")[0]
        for cid, label in zip(clusterer.cluster_ids_, clusterer.labels_, strict=True)
        # A topic named by a hashtag among its heaviest terms, not one that merely has a few
        if label.startswith("#") and label.split(" · ")[0] in clusterer.top_terms(cid, 3)
    }
    assert len(top_tag_before) >= len(TOPICS)
    vocabulary_before = set(clusterer.state_.vectorizer.vocabulary_)

    stream, _ = synthetic(seed=77, n=10000)
    stream_docs = docs_of(stream)
    for step, start in enumerate(range(0, len(stream_docs), 500)):
        batch = stream_docs[start : start + 500]
        if step % 3 == 0:  # words the vocabulary has never seen
            batch = [f"{d} {NEW_WORDS[step % len(NEW_WORDS)]} gizmo{step}" for d in batch]
        clusterer.partial_fit(batch)
        if step % 5 == 4:
            clusterer.refit()

    vocabulary_after = set(clusterer.state_.vectorizer.vocabulary_)
    assert clusterer.n_refits_ >= 4
    assert vocabulary_after - vocabulary_before, "the refits should have learned new words"
    after = clusterer.predict(fixed)
    if clusterer.auto:
        # Topics may merge or retire (the lineage says so); the others keep their ids. Posts
        # of the hashtag topics stay put; posts of small word-only topics may drift to
        # another small topic as centres move.
        live = np.isin(before, clusterer.cluster_ids_)
        topical = live & np.isin(before, list(top_tag_before))
        assert live.mean() >= 0.75
        assert (before == after)[topical].mean() >= 0.95
        assert (before == after)[live].mean() >= 0.8
    else:
        assert (before == after).mean() >= 0.9
    for cid, tag in top_tag_before.items():
        if cid not in clusterer.cluster_ids_:
            # Only a merge into a cluster of the same topic may end a hashtag topic here.
            assert clusterer.auto
            (merge,) = [e for e in clusterer.events_since(0) if cid in e.cluster_ids]
            assert merge.kind == "merge" and merge.cluster_ids[1] == cid
            survivor = merge.cluster_ids[0]
            while survivor not in clusterer.cluster_ids_:  # merged again since
                (merge,) = [
                    e for e in clusterer.events_since(merge.seq) if e.cluster_ids[1:] == (survivor,)
                ]
                survivor = merge.cluster_ids[0]
            top = clusterer.label_of(survivor).split(" · ")[0].lstrip("#")
            assert TOPIC_OF_TAG.get(top) == TOPIC_OF_TAG.get(tag.lstrip("#")), (tag, top)
            continue
        tags_after = [t for t in clusterer.top_terms(cid, n=10) if t.startswith("#")]
        assert tag in tags_after, (cid, tag, clusterer.label_of(cid))
        assert TOPIC_OF_TAG.get(clusterer.label_of(cid).split(" · ")[0].lstrip("#")) == (
            TOPIC_OF_TAG.get(tag.lstrip("#"))
        )


# -- online learning --------------------------------------------------------------------------
def test_learning_is_pooled_until_learn_batch_size(small_clusterer):
    clusterer = copy.deepcopy(small_clusterer)
    posts, _ = synthetic(seed=8, n=120)
    docs = docs_of(posts)
    centers = clusterer.state_.kmeans.cluster_centers_.copy()
    for start in (0, 40):
        batch = docs[start : start + 40]
        clusterer.learn(batch, clusterer.transform(batch))
        assert np.array_equal(clusterer.state_.kmeans.cluster_centers_, centers)
    batch = docs[80:120]  # 120 pooled docs ≥ learn_batch_size of 100: one step
    clusterer.learn(batch, clusterer.transform(batch))
    assert not np.array_equal(clusterer.state_.kmeans.cluster_centers_, centers)
    assert clusterer.pending_ == []


def test_flush_applies_pooled_documents(small_clusterer):
    clusterer = copy.deepcopy(small_clusterer)
    posts, _ = synthetic(seed=9, n=30)
    centers = clusterer.state_.kmeans.cluster_centers_.copy()
    clusterer.partial_fit(docs_of(posts))
    assert np.array_equal(clusterer.state_.kmeans.cluster_centers_, centers)
    clusterer.flush()
    assert not np.array_equal(clusterer.state_.kmeans.cluster_centers_, centers)


def test_centres_are_never_reassigned_at_random(fixed_clusterer):
    clusterer = fixed_clusterer
    assert clusterer.state_.kmeans.reassignment_ratio == 0
    # Learn from one topic only: centres that receive none of its posts must not move.
    posts, topics = synthetic(seed=13, n=9000)
    one_topic = [topic_document(p) for p, t in zip(posts, topics, strict=True) if t == "travel"]
    receiving = set(clusterer.predict(one_topic).tolist())
    centers = clusterer.state_.kmeans.cluster_centers_.copy()
    for start in range(0, len(one_topic), 100):
        clusterer.partial_fit(one_topic[start : start + 100])
    clusterer.flush()
    moved = ~np.all(clusterer.state_.kmeans.cluster_centers_ == centers, axis=1)
    assert moved.any()
    assert set(np.flatnonzero(moved).tolist()) <= receiving
    clusterer.refit()
    assert clusterer.state_.kmeans.reassignment_ratio == 0


# -- predictions ---------------------------------------------------------------------------
def test_predict_matches_sklearn_exactly(fixed_clusterer, labelled_docs):
    clusterer = fixed_clusterer
    docs, _ = labelled_docs
    odd = ["", "the and of", "zzqx unknownword", "#nba", "😍😍😍", "a" * 3000]
    for batch in (docs, odd, docs[:1]):
        features = clusterer.transform(batch)
        expected = clusterer.state_.kmeans.predict(features)
        assert np.array_equal(clusterer.predict(batch), expected)
    clusterer.partial_fit(docs)
    clusterer.refit()
    assert np.array_equal(
        clusterer.predict(docs), clusterer.state_.kmeans.predict(clusterer.transform(docs))
    )


# Words next to emoji, accents, other scripts, digits, underscores and stray "#": the ASCII
# texts and those whose only non-ASCII characters separate words skip the regex.
ODD_DOCS = [
    "",
    "the and of",
    "Game NIGHT!!! #NBA #nba",
    "a#bc ##tag #a x_y __ 12 #12 tag#",
    "love😍it 🏀🏀 #Hoops🔥",
    "Café crème à Zürich, naïve résumé",
    "ΣΟΦΙΑ σοφός İstanbul straße ٣٤ ①② Ⓐ",
    "smart ‘quotes’ … and—dashes",
    "😍😍😍",
    "a" * 3000,
]


def test_fast_vectorizer_equals_sklearn_transform(labelled_docs):
    docs, _ = labelled_docs
    for fitted_on in (docs, ODD_DOCS * 3):  # a vocabulary holding the odd tokens too
        vectorizer = StreamingTopicClusterer().make_vectorizer(len(fitted_on)).fit(fitted_on)
        fast = FastTfidfVectorizer(vectorizer)
        for batch in (docs[:300], ODD_DOCS, [d.upper() for d in ODD_DOCS]):
            expected = vectorizer.transform(batch).toarray()
            assert np.allclose(fast.transform(batch).toarray(), expected, rtol=0, atol=1e-12)


def test_fast_vectorizer_saved_without_terms_loads_with_them(labelled_docs):
    docs, _ = labelled_docs
    vectorizer = StreamingTopicClusterer().make_vectorizer(len(docs)).fit(docs)
    fast = FastTfidfVectorizer(vectorizer)
    old = fast.__dict__.copy()
    del old["terms"]  # as pickled before the attribute existed
    loaded = FastTfidfVectorizer.__new__(FastTfidfVectorizer)
    loaded.__setstate__(old)
    assert list(loaded.terms) == list(vectorizer.get_feature_names_out())
    assert list(pickle.loads(pickle.dumps(fast)).terms) == list(fast.terms)


def test_empty_batch_gives_empty_predictions(clusterer):
    centers = clusterer.state_.kmeans.cluster_centers_.copy()
    ids = clusterer.predict([])
    assert ids.shape == (0,)
    assert ids.dtype.kind == "i"
    clusterer.partial_fit([])
    assert clusterer.pending_ == []
    assert np.array_equal(clusterer.state_.kmeans.cluster_centers_, centers)


def test_fit_needs_enough_documents():
    with pytest.raises(ValueError, match="at least 6 documents"):
        StreamingTopicClusterer(n_clusters=6).fit(["#nba game", "#ai model"])
