"""Full-text search over archived posts: SQLite FTS5 or PostgreSQL's text search.

SQLite: `posts_fts`, an FTS5 index whose content is `posts.text` (external content: the
text is stored once, in `posts`). New posts are indexed in bulk by `index_new_posts`, which
the store's `write` runs in the same transaction as its upsert (every post above the
highest rowid indexed so far: a per-row trigger halved the writer's rate, one statement
per batch costs it a few percent). Triggers keep deletes (pruning) and changed text
(a rescored post) in step. PostgreSQL: a GIN index on `to_tsvector('simple', text)`; queries use
the same expression so the planner picks it. The `simple` configuration (no stemming, no
stop words) matches words as FTS5's default tokenizer does, so both engines find the same
posts.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

FTS_TABLE = "posts_fts"
PG_INDEX = "ix_posts_text_fts"
# Names the schema check leaves out: the FTS5 table and its shadow tables, and the
# expression index, which `archive.schema` cannot describe for both engines.
SEARCH_NAMES = frozenset(
    {FTS_TABLE, *(f"{FTS_TABLE}_{s}" for s in ("data", "idx", "docsize", "config")), PG_INDEX}
)

_SQLITE_TRIGGERS = {
    "posts_fts_delete": (
        "CREATE TRIGGER posts_fts_delete AFTER DELETE ON posts BEGIN "
        "INSERT INTO posts_fts(posts_fts, rowid, text) VALUES ('delete', old.rowid, old.text); "
        "END"
    ),
    # A rescored post rewrites every column; its words are re-indexed only if its text
    # changed (and only if it was indexed already: newer rows are left to index_new_posts).
    "posts_fts_update": (
        "CREATE TRIGGER posts_fts_update AFTER UPDATE OF text ON posts "
        "WHEN old.text IS NOT new.text "
        "AND old.rowid <= (SELECT coalesce(max(id), 0) FROM posts_fts_docsize) BEGIN "
        "INSERT INTO posts_fts(posts_fts, rowid, text) VALUES ('delete', old.rowid, old.text); "
        "INSERT INTO posts_fts(rowid, text) VALUES (new.rowid, new.text); END"
    ),
}


def create_search_index(connection: Connection) -> None:
    """Create the full-text index and index every post already archived."""
    if connection.dialect.name == "postgresql":
        connection.execute(
            text(
                f"CREATE INDEX IF NOT EXISTS {PG_INDEX} ON posts "
                "USING gin (to_tsvector('simple', text))"
            )
        )
        return
    connection.execute(
        text(
            f"CREATE VIRTUAL TABLE IF NOT EXISTS {FTS_TABLE} USING fts5("
            "text, content='posts', content_rowid='rowid')"
        )
    )
    _sqlite_triggers(connection)
    connection.execute(text(f"INSERT INTO {FTS_TABLE}({FTS_TABLE}) VALUES ('rebuild')"))


def index_new_posts(connection: Connection) -> None:
    """Index the posts written since the last call (SQLite; PostgreSQL's index needs no
    help). New rows get rowids above every existing one, so "above the highest indexed
    rowid" is exactly what is not indexed yet."""
    if connection.dialect.name != "sqlite":
        return
    exists = connection.execute(
        text("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = :name"),
        {"name": FTS_TABLE},
    ).first()
    if exists is None:  # a schema before revision 0003
        return
    connection.execute(
        text(
            f"INSERT INTO {FTS_TABLE}(rowid, text) SELECT rowid, text FROM posts "
            f"WHERE rowid > (SELECT coalesce(max(id), 0) FROM {FTS_TABLE}_docsize)"
        )
    )


def drop_search_index(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text(f"DROP INDEX IF EXISTS {PG_INDEX}"))
        return
    for name in _SQLITE_TRIGGERS:
        connection.execute(text(f"DROP TRIGGER IF EXISTS {name}"))
    connection.execute(text(f"DROP TABLE IF EXISTS {FTS_TABLE}"))


def repair_search_index(connection: Connection) -> bool:
    """On SQLite, put back triggers a later migration lost by copying `posts` (Alembic's
    batch mode on SQLite rebuilds a table without its triggers) and re-index; True if it
    had to. Also indexes posts that a writer other than the store left unindexed. Nothing
    to do on PostgreSQL or before the index exists."""
    if connection.dialect.name != "sqlite":
        return False
    names = set(
        connection.execute(
            text("SELECT name FROM sqlite_master WHERE type IN ('table', 'trigger')")
        ).scalars()
    )
    if FTS_TABLE not in names:
        return False
    if all(t in names for t in _SQLITE_TRIGGERS):
        index_new_posts(connection)
        return False
    _sqlite_triggers(connection)
    connection.execute(text(f"INSERT INTO {FTS_TABLE}({FTS_TABLE}) VALUES ('rebuild')"))
    return True


def _sqlite_triggers(connection: Connection) -> None:
    for name, statement in _SQLITE_TRIGGERS.items():
        connection.execute(text(f"DROP TRIGGER IF EXISTS {name}"))
        connection.execute(text(statement))
