"""The archive's tables, described once for both engines (SQLite and PostgreSQL).

Times are seconds since the epoch (double precision): the same on both engines, indexable,
and what the records already carry. Lists (hashtags, mentions, …) are JSON text. The
migrations in `archive/migrations/versions` create exactly these tables; a test checks that
they agree.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Double,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

posts = Table(
    "posts",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("text", Text, nullable=False),
    Column("author", String(200), nullable=False),
    Column("created_at", Double, nullable=False),  # the post's own (event) time
    Column("hashtags", Text, nullable=False),  # JSON list of lower-case tags
    Column("mentions", Text, nullable=False),
    Column("urls", Text, nullable=False),
    Column("emoji", Text, nullable=False),
    Column("author_followers", BigInteger),
    Column("lang", String(20)),
    Column("source", String(100)),
    Column("observed_engagement", Text),  # JSON object of counts, or NULL
    Column("sentiment_compound", Double, nullable=False),
    Column("sentiment_pos", Double, nullable=False),
    Column("sentiment_neu", Double, nullable=False),
    Column("sentiment_neg", Double, nullable=False),
    Column("sentiment_label", String(20), nullable=False),
    Column("sentiment_calibrated_label", String(20)),  # NULL on posts scored before it
    Column("sentiment_calibrated_probability", Double),
    Column("cluster_id", Integer, nullable=False),
    Column("cluster_label", Text, nullable=False),
    Column("engagement_predicted", Double, nullable=False),
    Column("engagement_band", String(20), nullable=False),
    Column("model_version", String(100), nullable=False),
    Column("latency_ms", Double, nullable=False),
    Column("scored_at", Double, nullable=False),
    Column("received_at", Double, nullable=False),
    # When the archive first stored this post: kept when a rescored post replaces the row.
    Column("first_seen_at", Double, nullable=False),
    Column("updated_at", Double, nullable=False),
    Index("ix_posts_created_at", "created_at"),
    Index("ix_posts_first_seen_at", "first_seen_at"),
    Index("ix_posts_author", "author"),
    Index("ix_posts_cluster_created", "cluster_id", "created_at"),
    # Explore's charts of a time range read this index alone, never the wide rows.
    Index(
        "ix_posts_explore",
        "created_at",
        "sentiment_compound",
        "sentiment_label",
        "cluster_id",
        "hashtags",
    ),
)

alerts = Table(
    "alerts",
    metadata,
    # The alert's deterministic id (a digest of its kind, subject and first window): every
    # node and every replay names an alert alike, so writing it again changes one row.
    Column("id", String(64), primary_key=True),
    Column("kind", String(40), nullable=False),
    Column("subject", String(300), nullable=False),
    Column("first_window", Double, nullable=False),  # start of the window it first fired in
    Column("window_start", Double, nullable=False),  # its strongest window
    Column("window_end", Double, nullable=False),  # end of the last window it fired in
    Column("observed", Double, nullable=False),
    Column("expected", Double, nullable=False),
    Column("score", Double, nullable=False),  # -log10 p
    Column("p_value", Double, nullable=False),
    Column("severity", String(20), nullable=False),
    Column("explanation", Text, nullable=False),
    Column("samples", Text, nullable=False),  # JSON list of sample posts (ids, text, …)
    Column("sample_ids", Text, nullable=False),  # JSON list of the sample posts' ids
    Column("explore_url", Text, nullable=False),
    Column("status", String(20), nullable=False),  # open, acknowledged, resolved, withdrawn
    Column("occurrences", Integer, nullable=False),
    Column("provisional", Integer, nullable=False),  # 1 while its window is not closed
    Column("resolved_at", Double),
    # Which state of the alert is newest (see `archive.alert_store.revision`): an older
    # state written late never replaces a newer one.
    Column("revision", Double, nullable=False),
    Column("acknowledged_at", Double),
    Column("acknowledged_by", String(200)),
    Column("first_seen_at", Double, nullable=False),  # when the archive first stored it
    Column("updated_at", Double, nullable=False),
    Index("ix_alerts_first_window", "first_window", "id"),
    Index("ix_alerts_kind_first_window", "kind", "first_window"),
    Index("ix_alerts_subject", "subject"),
    Index("ix_alerts_first_seen_at", "first_seen_at"),
)


dead_letters = Table(
    "dead_letters",
    metadata,
    # A digest of where the input came from and what it was: a redelivered or re-published
    # dead letter has the same id, so it is stored once.
    Column("id", String(64), primary_key=True),
    Column("value", LargeBinary),  # the rejected input byte for byte (NULL: a tombstone)
    Column("key", LargeBinary),
    Column("reason", Text, nullable=False),
    Column("source", String(200), nullable=False),
    Column("position", Text, nullable=False),  # JSON object (topic/partition/offset, line)
    Column("received_at", Double, nullable=False),
    Column("first_seen_at", Double, nullable=False),
    Index("ix_dead_letters_first_seen_at", "first_seen_at"),
)

tracked_topics = Table(
    "tracked_topics",
    metadata,
    Column("name", String(60), primary_key=True),
    Column("keywords", Text, nullable=False),  # JSON list of lower-case words or phrases
    Column("hashtags", Text, nullable=False),  # JSON list of lower-case tags, without `#`
    Column("updated_by", String(200), nullable=False),
    Column("updated_at", Double, nullable=False),
)

corrections = Table(
    "corrections",
    metadata,
    # One row per post and field: a later correction replaces the earlier one.
    Column("post_id", String(200), primary_key=True),
    Column("field", String(20), primary_key=True),  # sentiment or topic
    Column("value", String(100), nullable=False),  # a sentiment label or a topic's name
    Column("text", Text, nullable=False),  # the post's text: the example outlives the post
    Column("document", Text, nullable=False),  # what the topic clusterer reads of the post
    Column("model_value", Text, nullable=False),  # what the models said when corrected
    Column("corrected_by", String(200), nullable=False),
    Column("corrected_at", Double, nullable=False),
    Column("revisions", Integer, nullable=False),
    Index("ix_corrections_corrected_at", "corrected_at"),
    Index("ix_corrections_field_value", "field", "value"),  # the topic names offered
)
