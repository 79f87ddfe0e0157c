"""`socialpulse export` on both engines: the filtered set in each format, an empty set, bad
filters, an archive that cannot be reached, and the progress bar on stderr."""

from __future__ import annotations

import csv
import io

import orjson
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from app.cli import main
from archive.queries import EXPORT_COLUMNS
from archive.store import ArchiveStore
from archive.tracked_store import TrackedTopicStore
from tests.test_explore_queries import make_posts


@pytest.fixture
def archived(archive_url, pipeline, sample_posts):
    posts = make_posts(pipeline, sample_posts)
    store = ArchiveStore(archive_url)
    store.migrate()
    store.write(posts)
    store.close()
    return posts


def run(archive_url: str, *args: str):
    env = {"SOCIALPULSE_ARCHIVE_URL": archive_url, "SOCIALPULSE_KAFKA_BOOTSTRAP": ""}
    return CliRunner(env=env).invoke(main, ["export", *args])


def newest_first(items) -> list[str]:
    ordered = sorted(items, key=lambda s: (s.post.created_at, s.post.id), reverse=True)
    return [s.post.id for s in ordered]


def test_the_filtered_set_in_each_format(archive_url, archived, tmp_path):
    expected = newest_first(
        [s for s in archived if "battery" in s.post.text.lower() and s.post.source == "kafka"]
    )
    filters = ["-q", "battery", "--source", "kafka"]
    result = run(archive_url, *filters, "-o", str(tmp_path / "a.csv"))
    assert result.exit_code == 0, result.output
    assert f"exported {len(expected)} posts to {tmp_path / 'a.csv'}" in result.stderr
    rows = list(csv.DictReader(io.StringIO((tmp_path / "a.csv").read_text())))
    assert [r["id"] for r in rows] == expected
    run(archive_url, *filters, "--format", "jsonl", "-o", str(tmp_path / "a.jsonl"))
    lines = (tmp_path / "a.jsonl").read_bytes().splitlines()
    assert [orjson.loads(line)["id"] for line in lines] == expected
    run(archive_url, *filters, "--format", "parquet", "-o", str(tmp_path / "a.parquet"))
    assert pq.read_table(tmp_path / "a.parquet").column("id").to_pylist() == expected
    assert not list(tmp_path.glob("*.partial"))


def test_time_range_and_stdout(archive_url, archived):
    result = run(archive_url, "--from", "1700000000", "--to", "1700010000", "-o", "-")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    expected = [
        s for s in archived if 1_700_000_000 <= s.post.created_at.timestamp() < 1_700_010_000
    ]
    assert [r["id"] for r in rows] == newest_first(expected)


def test_the_progress_bar_goes_to_stderr(archive_url, archived, tmp_path):
    result = run(archive_url, "-o", str(tmp_path / "all.csv"))
    assert "exporting 60 posts" in result.stderr
    assert "exporting" not in result.stdout
    quiet = run(archive_url, "--no-progress", "-o", str(tmp_path / "quiet.csv"))
    assert "exporting 60 posts" not in quiet.stderr and "exported 60 posts" in quiet.stderr


def test_zero_rows_give_a_valid_empty_file_and_say_so(archive_url, archived, tmp_path):
    for fmt in ("csv", "jsonl", "parquet"):
        out = tmp_path / f"none.{fmt}"
        result = run(archive_url, "--author", "nobody", "--format", fmt, "-o", str(out))
        assert result.exit_code == 0, result.output
        assert "no posts match these filters: wrote an empty" in result.stderr
    assert (tmp_path / "none.csv").read_text().strip() == ",".join(EXPORT_COLUMNS)
    assert (tmp_path / "none.jsonl").read_bytes() == b""
    assert pq.read_table(tmp_path / "none.parquet").num_rows == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "last week"], "ISO 8601"),
        (["--compound-min", "5"], "from -1 to 1"),
        (["-q", "x" * 300], "at most 200 characters"),
        (["--format", "xlsx"], "'xlsx' is not one of"),
    ],
)
def test_bad_filters_are_refused_before_anything_is_written(tmp_path, args, message):
    url = f"sqlite:///{tmp_path / 'a.sqlite3'}"
    result = run(url, *args, "-o", str(tmp_path / "out.csv"))
    assert result.exit_code == 2 and message in result.output
    assert not (tmp_path / "out.csv").exists()


def test_an_archive_out_of_reach_is_an_error_that_leaves_no_file(tmp_path):
    result = run("postgresql://u:secret@127.0.0.1:9/x", "-o", str(tmp_path / "out.csv"))
    assert result.exit_code == 1
    assert "127.0.0.1:9" in result.output and "secret" not in result.output
    assert not list(tmp_path.iterdir())


def test_a_tracked_topic_by_name(archive_url, archived, tmp_path):
    store = ArchiveStore(archive_url)
    TrackedTopicStore(store).save(("Charging", ("charge",), ("tag_x",)), by="test")
    store.close()
    result = run(archive_url, "--tracked", "charging", "--format", "jsonl", "-o", "-")
    assert result.exit_code == 0, result.output
    expected = [
        s for s in archived if "charge" in s.post.text.lower().split() or "tag_x" in s.post.hashtags
    ]
    assert [orjson.loads(line)["id"] for line in result.stdout.splitlines()] == newest_first(
        expected
    )
    unknown = run(archive_url, "--tracked", "nobody", "-o", str(tmp_path / "x.csv"))
    assert unknown.exit_code == 2 and "no tracked topic is named 'nobody'" in unknown.output
    assert not list(tmp_path.glob("x.csv*"))
