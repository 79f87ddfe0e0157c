"""Filtered archived posts as CSV, JSON Lines or Parquet, streamed: rows come in chunks
(`archive.queries.chunks`) and leave as bytes chunk by chunk, so an export of a million
rows holds one chunk in memory, never the whole set.

Every format has the same columns (`archive.queries.EXPORT_COLUMNS`). An export of no rows
is still a valid file: the CSV header, an empty JSON Lines file, a Parquet file with the
schema and no rows.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from archive.queries import EXPORT_COLUMNS, iso

# Spreadsheets run a cell that starts with one of these as a formula (CSV injection): such
# text is exported with a leading apostrophe, which they show as text.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class ExportFormat:
    name: str
    media_type: str
    extension: str
    write: Callable[[Iterable[list[Any]]], Iterator[bytes]]


_CREATED, _HASHTAGS, _FIRST_SEEN = (
    EXPORT_COLUMNS.index(name) for name in ("created_at", "hashtags", "first_seen_at")
)


def _cells(row: Any) -> list[Any]:
    """An exported row's values in `EXPORT_COLUMNS` order (the order `chunks` reads them
    in): times as ISO 8601, hashtags as a list."""
    cells = list(row)
    cells[_CREATED] = iso(cells[_CREATED])
    cells[_FIRST_SEEN] = iso(cells[_FIRST_SEEN])
    cells[_HASHTAGS] = orjson.loads(cells[_HASHTAGS])
    return cells


# Columns that hold text from the posts themselves (the others are numbers and times).
_FREE_TEXT = frozenset({"id", "author", "text", "hashtags", "source", "lang", "cluster_label"})


def write_csv(chunks: Iterable[list[Any]]) -> Iterator[bytes]:
    """RFC 4180 CSV in UTF-8 with a header; hashtags space-separated."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(EXPORT_COLUMNS)
    yield buffer.getvalue().encode()
    guarded = [name in _FREE_TEXT for name in EXPORT_COLUMNS]
    for chunk in chunks:
        buffer.seek(0)
        buffer.truncate()
        for row in chunk:
            cells = _cells(row)
            cells[_HASHTAGS] = " ".join(cells[_HASHTAGS])
            for i, value in enumerate(cells):
                if guarded[i] and value and value.startswith(_FORMULA_START):
                    cells[i] = "'" + value
            writer.writerow(cells)
        yield buffer.getvalue().encode()


_NEWLINE = orjson.OPT_APPEND_NEWLINE


def write_jsonl(chunks: Iterable[list[Any]]) -> Iterator[bytes]:
    """One JSON object per line."""
    for chunk in chunks:
        yield b"".join(
            orjson.dumps(dict(zip(EXPORT_COLUMNS, _cells(r), strict=True)), option=_NEWLINE)
            for r in chunk
        )


class _Collector(io.RawIOBase):
    """A write-only file that keeps what was written until it is taken."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._position = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        chunk = bytes(data)
        self._parts.append(chunk)
        self._position += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self._position

    def take(self) -> bytes:
        data, self._parts = b"".join(self._parts), []
        return data


def write_parquet(chunks: Iterable[list[Any]]) -> Iterator[bytes]:
    """Parquet (zstd), one row group per chunk, sent as each group is written."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema(
        [
            ("id", pa.string()),
            ("created_at", pa.timestamp("us", tz="UTC")),
            ("author", pa.string()),
            ("text", pa.string()),
            ("hashtags", pa.list_(pa.string())),
            ("source", pa.string()),
            ("lang", pa.string()),
            ("author_followers", pa.int64()),
            ("sentiment_compound", pa.float64()),
            ("sentiment_label", pa.string()),
            ("sentiment_calibrated_label", pa.string()),
            ("sentiment_calibrated_probability", pa.float64()),
            ("cluster_id", pa.int64()),
            ("cluster_label", pa.string()),
            ("engagement_predicted", pa.float64()),
            ("engagement_band", pa.string()),
            ("model_version", pa.string()),
            ("first_seen_at", pa.timestamp("us", tz="UTC")),
        ]
    )
    sink = _Collector()
    writer = pq.ParquetWriter(sink, schema, compression="zstd")
    try:
        for chunk in chunks:
            rows = [list(row) for row in chunk]
            for cells in rows:
                # Times as microseconds (ISO text is for the text formats).
                cells[_CREATED] = int(cells[_CREATED] * 1_000_000)
                cells[_FIRST_SEEN] = int(cells[_FIRST_SEEN] * 1_000_000)
                cells[_HASHTAGS] = orjson.loads(cells[_HASHTAGS])
            columns = {name: [cells[i] for cells in rows] for i, name in enumerate(schema.names)}
            writer.write_table(pa.table(columns, schema=schema))
            yield sink.take()
    finally:
        writer.close()
    yield sink.take()


FORMATS = {
    "csv": ExportFormat("csv", "text/csv; charset=utf-8", "csv", write_csv),
    "jsonl": ExportFormat("jsonl", "application/x-ndjson", "jsonl", write_jsonl),
    "parquet": ExportFormat("parquet", "application/vnd.apache.parquet", "parquet", write_parquet),
}


def export_format(name: str) -> ExportFormat:
    """The format called `name` (ValueError naming the formats otherwise)."""
    try:
        return FORMATS[name.lower()]
    except KeyError:
        raise ValueError(f"'format' is one of {', '.join(FORMATS)}, not {name[:20]!r}") from None


def counted(chunks: Iterable[list[Any]], progress: Callable[[int], None]) -> Iterator[list[Any]]:
    """`chunks`, calling `progress(rows)` after each one."""
    for chunk in chunks:
        yield chunk
        progress(len(chunk))
