"""Topics that follow the stream: births, retirements, merges, stable ids and the lineage."""

from __future__ import annotations

import copy
import json
import pickle
from collections import Counter

import numpy as np
import pytest

from models.clustering import StreamingTopicClusterer, TopicEvent, assign_rows
from models.evaluation import evaluate_streaming_clustering, score_micro_batch
from streaming.records import parse_post

from .conftest import SHARED_DATA

FILLER = ("today", "really", "people", "thing", "still", "going", "think", "looks")


def topic_words(topic: int) -> list[str]:
    """Twelve words only this topic uses (made up, so no stop word or shared term)."""
    return [f"t{topic}{chr(97 + i)}{chr(97 + (i * 7 + topic) % 26)}x" for i in range(12)]


# When each generated topic is talked about, in batches of BATCH posts.
BATCH = 100
SCHEDULE = {0: range(0, 12), 1: range(0, 5), 2: range(0, 5), 3: range(4, 12), 4: range(6, 12)}


def evolving_stream(seed: int = 0) -> tuple[list[str], list[int], list[int]]:
    """Texts, their topic and their batch: topics 1 and 2 stop after batch 4, topic 3 starts
    at batch 4 and topic 4 at batch 6; topic 0 runs throughout."""
    rng = np.random.default_rng(seed)
    texts, topics, batches = [], [], []
    for batch in range(12):
        live = [t for t, span in SCHEDULE.items() if batch in span]
        for _ in range(BATCH):
            topic = int(rng.choice(live))
            words = list(rng.choice(topic_words(topic), 4, replace=False))
            words += list(rng.choice(FILLER, 2, replace=False))
            rng.shuffle(words)
            texts.append(" ".join(words))
            topics.append(topic)
            batches.append(batch)
    return texts, topics, batches


def new_clusterer(**options) -> StreamingTopicClusterer:
    # A short half-life, so that topics silent for a few batches retire within the test.
    return StreamingTopicClusterer(half_life=60.0, window_size=2000, **options)


@pytest.fixture(scope="module")
def streamed() -> tuple[StreamingTopicClusterer, list[int], list[int], list[int]]:
    texts, topics, batches = evolving_stream()
    clusterer = new_clusterer().fit(texts[:BATCH])
    ids = clusterer.predict(texts[:BATCH]).tolist()
    for start in range(BATCH, len(texts), BATCH):
        ids += score_micro_batch(clusterer, texts[start : start + BATCH]).tolist()
        clusterer.wait_for_refit()
    return clusterer, ids, topics, batches


def main_id(ids, topics, batches, topic: int, batch_range) -> int:
    chosen = [
        i for i, t, b in zip(ids, topics, batches, strict=True) if t == topic and b in batch_range
    ]
    assert chosen, (topic, batch_range)
    cid, n = Counter(chosen).most_common(1)[0]
    assert n >= 0.9 * len(chosen), (topic, Counter(chosen))
    return cid


def events_of(clusterer, kind: str) -> list[TopicEvent]:
    return [e for e in clusterer.events_since(0) if e.kind == kind]


def test_new_topics_are_born_with_their_own_id_on_arrival(streamed):
    clusterer, ids, topics, batches = streamed
    births = {e.cluster_ids[0]: e for e in events_of(clusterer, "birth")}
    for topic, span in SCHEDULE.items():
        cid = main_id(ids, topics, batches, topic, span)
        assert cid in births
        # The birth names the topic by its own words.
        assert set(births[cid].top_terms[0]) & set(topic_words(topic)), births[cid]
    # Topic 3 appeared after the warm start: its cluster was born in its first batch.
    born_at = births[main_id(ids, topics, batches, 3, range(4, 12))].posts_seen
    assert 4 * BATCH < born_at <= 5 * BATCH


def test_each_topic_keeps_one_stable_id_while_it_lives(streamed):
    _, ids, topics, batches = streamed
    distinct = set()
    for topic, span in SCHEDULE.items():
        first = main_id(ids, topics, batches, topic, range(span.start, span.start + 2))
        last = main_id(ids, topics, batches, topic, range(span.stop - 2, span.stop))
        assert first == last, topic
        distinct.add(first)
    assert len(distinct) == len(SCHEDULE)  # five topics, five ids


def test_silent_topics_retire_and_their_ids_are_never_reused(streamed):
    clusterer, ids, topics, batches = streamed
    live = set(clusterer.cluster_ids_)
    retired = {e.cluster_ids[0]: e for e in events_of(clusterer, "retirement")}
    for topic in (1, 2):
        cid = main_id(ids, topics, batches, topic, SCHEDULE[topic])
        assert cid not in live
        assert cid in retired
        assert set(retired[cid].top_terms[0]) & set(topic_words(topic))
        # No post after the retirement got the retired id.
        after = [i for i, b in zip(ids, batches, strict=True) if b >= SCHEDULE[topic].stop + 2]
        assert cid not in after
    for topic in (0, 3, 4):
        assert main_id(ids, topics, batches, topic, range(10, 12)) in live
    births = [e.cluster_ids[0] for e in events_of(clusterer, "birth")]
    assert len(births) == len(set(births))
    assert live <= set(births)
    # Live clusters: the three topics still talked about, give or take one.
    assert 3 <= len(live) <= 4


def test_the_lineage_is_ordered_typed_and_consumable_in_steps(streamed):
    clusterer, *_ = streamed
    events = clusterer.events_since(0)
    assert events == list(clusterer.lineage_)
    seqs = [e.seq for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert [e.posts_seen for e in events] == sorted(e.posts_seen for e in events)
    middle = events[len(events) // 2].seq
    assert clusterer.events_since(middle) == [e for e in events if e.seq > middle]
    assert clusterer.events_since(events[-1].seq) == []
    for event in events:
        assert event.kind in ("birth", "retirement", "merge", "split")
        assert len(event.cluster_ids) == len(event.top_terms) >= 1
    json.dumps([e.to_dict() for e in events])  # what the dashboard and alerts receive


def test_the_lineage_is_bounded():
    texts, _, _ = evolving_stream(seed=3)
    clusterer = new_clusterer(lineage_size=3).fit(texts[:BATCH])
    for start in range(BATCH, len(texts), BATCH):
        clusterer.partial_fit(texts[start : start + BATCH])
    assert len(clusterer.lineage_) == 3
    assert clusterer.n_events_ > 3
    assert clusterer.events_since(0)[-1].seq == clusterer.n_events_


def test_converged_topics_merge_into_the_heavier_one():
    words = topic_words(0)
    texts = [" ".join(np.random.default_rng(i).choice(words, 5, replace=False)) for i in range(300)]
    clusterer = StreamingTopicClusterer(merge_similarity=1.0, learn_batch_size=50).fit(texts[:100])
    # Two clusters of the same topic, as two seeds of one story may start apart.
    state = clusterer.state_
    clusterer.state_ = clusterer._auto_state(
        state.vectorizer,
        state.fast,
        np.vstack([state.kmeans.cluster_centers_[:1]] * 2) * np.array([[1.0], [0.9]]),
        np.array([50.0, 5.0]),
        np.array([0, 7]),
        (state.labels[0], state.labels[0]),
        state.n_docs,
    )
    clusterer.touched_ = [0, 7]
    clusterer.merge_similarity = 0.9
    clusterer.partial_fit(texts[100:200])
    merges = events_of(clusterer, "merge")
    assert [e.cluster_ids for e in merges] == [(0, 7)]
    assert clusterer.cluster_ids_ == [0]


def test_saved_and_loaded_clusterer_keeps_lineage_ids_and_goes_on(streamed):
    clusterer, *_ = streamed
    texts, _, _ = evolving_stream(seed=9)
    loaded = pickle.loads(pickle.dumps(clusterer))
    assert loaded.events_since(0) == clusterer.events_since(0)
    assert loaded.cluster_ids_ == clusterer.cluster_ids_
    assert np.array_equal(loaded.predict(texts), clusterer.predict(texts))
    before = set(e.cluster_ids[0] for e in events_of(loaded, "birth"))
    fresh = [" ".join(topic_words(7)[i % 12 : i % 12 + 4]) for i in range(BATCH)]
    loaded.partial_fit(fresh)  # words never seen: a new topic
    born = [e.cluster_ids[0] for e in events_of(loaded, "birth")]
    assert set(born) - before, "a new topic should have been born after loading"
    assert min(set(born) - before) > max(before)  # ids continue, never reused


def test_a_clusterer_saved_before_topics_could_split_learns_on_and_never_splits(streamed):
    clusterer, *_ = streamed
    older = pickle.loads(pickle.dumps(clusterer))
    del older.split_similarity, older.split_due_  # as a version saved before splits pickles
    loaded = pickle.loads(pickle.dumps(older))
    texts, _, _ = evolving_stream(seed=4)
    for start in range(0, len(texts), BATCH):
        loaded.partial_fit(texts[start : start + BATCH])
    assert loaded.split_similarity == 0.0 and not events_of(loaded, "split")


def test_a_clusterer_saved_before_topics_were_weighed_assigns_by_cosine_alone(streamed):
    clusterer, *_ = streamed
    older = pickle.loads(pickle.dumps(clusterer))
    del older.concentration  # as a version saved before the weighed assignment pickles
    object.__delattr__(older.state_, "concentration")
    object.__delattr__(older.state_, "fit_similarity")
    loaded = pickle.loads(pickle.dumps(older))
    assert loaded.concentration == 0.0 and loaded.state_.concentration == 0.0
    texts, _, _ = evolving_stream(seed=4)
    loaded.partial_fit(texts[:BATCH])
    assert loaded.state_.concentration == 0.0  # the states it makes go on the same way


def test_a_post_as_close_to_a_fledgling_topic_joins_the_established_one():
    # Cosine similarity of a post to three topics; the mean weight is 40.
    similarity = np.array([[0.30, 0.32, 0.0]])
    weights = np.array([60.0, 3.0, 57.0])
    assert assign_rows(similarity, weights, 0.0, 0.2).tolist() == [1]  # the nearest alone
    # Weighed: 3 against 40 costs ln(40 / 3) / 6 = 0.43 of cosine, more than its lead.
    assert assign_rows(similarity, weights, 6.0, 0.2).tolist() == [0]
    # A clearly closer fledgling keeps it.
    assert assign_rows(np.array([[0.30, 0.80, 0.0]]), weights, 6.0, 0.2).tolist() == [1]


def test_the_weight_never_pulls_a_post_into_a_topic_it_does_not_fit():
    weights = np.array([60.0, 3.0, 57.0])
    # The heavy topic is below the fit threshold (0.2): the post stays with the light one
    # it fits, though 0.15 + 0.43 > 0.25.
    assert assign_rows(np.array([[0.15, 0.25, 0.0]]), weights, 6.0, 0.2).tolist() == [1]
    # A post that fits none (a misfit, unless it opens a topic) goes where the weighed
    # similarity is largest.
    assert assign_rows(np.array([[0.15, 0.19, 0.05]]), weights, 6.0, 0.2).tolist() == [0]


def test_a_busy_topic_gets_no_pull_beyond_the_mean_weight():
    # Two topics above the mean weight (217) compete on similarity alone: the one three
    # times heavier does not take a post that is closer to the other...
    similarity = np.array([[0.30, 0.35, 0.0, 0.0, 0.0, 0.0]])
    weights = np.array([1000.0, 300.0, 1.0, 1.0, 1.0, 1.0])
    assert assign_rows(similarity, weights, 6.0, 0.2).tolist() == [1]
    # ... where an uncapped prior (ln(1000 / 300) / 6 = 0.2 of cosine) would give it.
    uncapped = similarity + np.log(weights) / 6.0
    assert uncapped.argmax() == 0


def test_evolving_stream_evaluation_reports_the_new_mode():
    texts, topics, _ = evolving_stream(seed=5)
    report = evaluate_streaming_clustering(
        texts,
        topics,
        "auto",
        batch_size=BATCH,
        clusterer_options={"half_life": 60.0},
    )
    data = report.to_dict()
    assert data["k"] == "auto"
    assert data["true_k"] == len(SCHEDULE)
    assert report.on_arrival.nmi > 0.9
    assert report.births >= 2  # topics 3 and 4, after the warm start
    assert report.retirements >= 2  # topics 1 and 2
    assert 3 <= report.live_clusters <= 4
    assert report.batch_kmeans is not None  # with the true number of topics
    for key in ("streaming", "on_arrival", "batch_kmeans", "naive_minibatch", "refits"):
        assert key in data
    # NMI per stretch of the stream: the warm start, then each micro-batch, end to end.
    per_batch = data["per_batch"]
    assert [(row["start"], row["end"]) for row in per_batch] == [
        (start, start + BATCH) for start in range(0, len(texts), BATCH)
    ]
    assert all(
        0.0 <= row[name] <= 1.0
        for row in per_batch
        for name in ("streaming", "on_arrival", "batch_kmeans")
    )
    # A batch where topic 3 has just appeared: the ids given on arrival already tell it apart.
    assert per_batch[4]["on_arrival"] > 0.8


def test_live_pipeline_names_a_new_topic_in_the_batch_that_brings_it(pipeline):
    before = set(pipeline.clusterer.cluster_ids_)
    posts = [
        parse_post({"text": " ".join(topic_words(8)[i % 8 : i % 8 + 4]) + " #zorbcon"})
        for i in range(40)
    ]
    scored = pipeline.score_batch(posts, learn=True)
    ids = Counter(s.cluster.id for s in scored)
    cid, n = ids.most_common(1)[0]
    assert n >= 36 and cid not in before
    assert "#zorbcon" in scored[0].cluster.label or any(
        "#zorbcon" in s.cluster.label for s in scored if s.cluster.id == cid
    )
    assert pipeline.clusterer.events_since(0)[-1].kind == "birth"
    explained = pipeline.explain(scored[0])
    assert "#zorbcon" in explained.cluster_terms


def test_without_learning_no_topic_is_born(pipeline):
    events = pipeline.clusterer.n_events_
    posts = [parse_post({"text": " ".join(topic_words(9)[:5])}) for _ in range(30)]
    pipeline.score_batch(posts, learn=False)
    assert pipeline.clusterer.n_events_ == events


NEWS_T = SHARED_DATA / "mstream_news" / "News-T.jsonl"


@pytest.mark.skipif(not NEWS_T.exists(), reason="../shared/data/mstream_news is not there")
def test_news_in_stream_order_reaches_the_published_streaming_figure():
    rows = [json.loads(line) for line in NEWS_T.read_text().splitlines() if line.strip()]
    report = evaluate_streaming_clustering(
        [r["text"] for r in rows], [r["cluster"] for r in rows], "auto", baselines=False
    )
    assert report.on_arrival.nmi >= 0.85  # MStream (KDD 2018): 0.850
    assert report.true_k / 1.5 <= report.live_clusters <= report.true_k * 1.5


SO_TITLES = SHARED_DATA / "stackoverflow_titles" / "titles.jsonl"


@pytest.mark.skipif(
    not SO_TITLES.exists(), reason="../shared/data/stackoverflow_titles is not there"
)
def test_broad_topics_keep_their_posts_when_they_sit_beside_small_ones():
    """StackOverflow titles: 20 broad tags, each made of many sub-topics. Batch KMeans given
    the true k reaches NMI 0.58 (../shared/data/README.md)."""
    rows = [json.loads(line) for line in SO_TITLES.read_text().splitlines() if line.strip()]
    texts, labels = [r["text"] for r in rows], [r["cluster"] for r in rows]
    report = evaluate_streaming_clustering(texts, labels, "auto", baselines=False)
    assert report.on_arrival.nmi >= 0.58 - 0.01
    assert report.streaming.nmi >= 0.58 - 0.01
    plain = evaluate_streaming_clustering(
        texts, labels, "auto", baselines=False, clusterer_options={"concentration": 0.0}
    )
    assert plain.on_arrival.nmi < report.on_arrival.nmi - 0.03


AIRLINE = SHARED_DATA / "twitter_airline_sentiment" / "Tweets.csv"


@pytest.mark.skipif(
    not AIRLINE.exists(), reason="../shared/data/twitter_airline_sentiment is not there"
)
def test_default_models_make_room_for_the_topics_of_a_real_feed(bundle):
    """The first-start models learned synthetic topics; a replay of real airline tweets must
    end with topics a person recognises, not with every post in one cluster."""
    import csv

    from models.clustering import topic_document
    from streaming.records import InvalidPost

    clusterer = copy.deepcopy(bundle.clusterer)
    docs = []
    with AIRLINE.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            try:
                docs.append(topic_document(parse_post({"text": row["text"]})))
            except InvalidPost:
                continue
    for start in range(0, len(docs), 500):
        score_micro_batch(clusterer, docs[start : start + 500])
        clusterer.wait_for_refit()
    clusterer.wait_for_refit(swap=True)
    final = Counter(clusterer.predict(docs).tolist())
    assert final.most_common(1)[0][1] < 0.2 * len(docs)
    assert sum(1 for n in final.values() if n >= 0.01 * len(docs)) >= 10
    terms = {cid: set(clusterer.top_terms(cid, 8)) for cid, _ in final.most_common(30)}
    for words in ({"cancelled", "flightled"}, {"bag", "bags", "luggage"}, {"hold", "phone"}):
        assert any(words & t for t in terms.values()), words


def test_a_topic_that_becomes_two_stories_splits_once_and_stays_split():
    rng = np.random.default_rng(3)
    volcano, strike, weather = topic_words(5)[:6], topic_words(6)[:6], topic_words(7)[:6]

    def post(*word_sets: list[str], each: int = 3) -> str:
        return " ".join(w for words in word_sets for w in rng.choice(words, each, replace=False))

    # At first the two stories come as one: every post names both.
    first = [post(volcano, strike, each=2) for _ in range(100)] + [
        post(weather) for _ in range(100)
    ]
    clusterer = StreamingTopicClusterer(seed=0).fit(first)
    [joint] = clusterer.predict([post(volcano, strike, each=2)])
    for _ in range(8):  # then each post is about one of them
        batch = [post(volcano) for _ in range(25)] + [post(strike) for _ in range(25)]
        batch += [post(weather) for _ in range(25)]
        clusterer.partial_fit(list(rng.permutation(batch)))
    [split] = events_of(clusterer, "split")
    assert split.cluster_ids[0] == joint and split.cluster_ids[1] not in {joint}
    assert not events_of(clusterer, "merge")  # the two never merge back
    born = split.cluster_ids[1]
    ids = clusterer.predict([post(volcano), post(strike)]).tolist()
    assert sorted(ids) == sorted([joint, born])
    assert set(split.top_terms[1]) <= set(volcano) or set(split.top_terms[1]) <= set(strike)
    # A topic whose posts stay alike never splits.
    calm = StreamingTopicClusterer(seed=0).fit(first[100:])
    for _ in range(8):
        calm.partial_fit([post(weather) for _ in range(75)])
    assert not events_of(calm, "split")
