"""Feed readers (JSONL, CSV, RSS/Atom, text) and `signalwatch push --dry-run` (no broker)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from streams.cli import main
from streams.feeds import FeedError, encode, html_to_text, parse_mapping, read_feed, to_rfc3339
from streams.records import parse_item

DATA = Path(__file__).resolve().parent.parent / "data"
CSV_MAP = {"id": "story_id", "title": "headline", "text": "body", "url": "link", "source": "outlet",
           "published_at": "date"}


def valid(path, **kw) -> list[dict]:
    return [r.item for r in read_feed(str(path), **kw) if r.error is None]


def test_csv_with_a_column_mapping():
    records = list(read_feed(str(DATA / "wire.csv"), mapping=CSV_MAP))
    assert [r.where for r in records] == ["wire.csv:2", "wire.csv:3", "wire.csv:4", "wire.csv:5"]
    first, second, empty, bad_date = records
    assert first.item["id"] == "w1" and first.item["title"].startswith("Drone strike")
    assert first.item["published_at"] == "2026-11-23T06:10:00Z", "RFC 822 dates become RFC 3339"
    assert second.item["source"] == "Example Wire" and "Istanbul" in second.item["text"]
    assert empty.error.reason == "no_text"
    assert bad_date.error.reason == "schema" and "published_at" in bad_date.error.detail


def test_csv_columns_named_like_fields_need_no_mapping(tmp_path):
    f = tmp_path / "plain.csv"
    f.write_text("Title,Text,URL\nTalks,The Kremlin is ready for peace talks.,https://example.org/a\n")
    (item,) = valid(f)
    assert item["title"] == "Talks" and item["url"] == "https://example.org/a"
    assert item["source"] == "plain.csv" and item["id"].startswith("u-")


def test_csv_mapping_to_a_missing_column_names_the_fix():
    with pytest.raises(FeedError, match=r"column 'body_text' not in CSV header .*use --map text=<column>"):
        list(read_feed(str(DATA / "wire.csv"), mapping={"text": "body_text"}))


def test_csv_without_a_text_column_names_the_fix(tmp_path):
    f = tmp_path / "x.csv"
    f.write_text("headline,body\nA,B\n")
    with pytest.raises(FeedError, match="use --map text=<column>"):
        list(read_feed(str(f)))


def test_bad_map_options():
    assert parse_mapping(["title=headline", "text = body"]) == {"title": "headline", "text": "body"}
    with pytest.raises(FeedError, match="FIELD=COLUMN"):
        parse_mapping(["title"])
    with pytest.raises(FeedError, match="not an item field"):
        parse_mapping(["headline=title"])
    assert len(valid(DATA / "wire.rss", mapping={"text": "body"})) == 2, "non-CSV files ignore --map"


@pytest.mark.parametrize("name", ["wire.rss", "wire.atom"])
def test_rss_and_atom_entries_become_items_with_the_workers_id(name):
    items = valid(DATA / name)
    assert items
    for item in items:
        assert item["url"].startswith("https://example.org/") and item["title"] and item["text"]
        assert "<" not in item["text"], "HTML is reduced to its text"
        assert item["published_at"].endswith("Z") and item["language"] == "en" and item["guid"]
        key, value = encode(item)
        # The worker parses the value and derives the id again: it must come out the same.
        assert parse_item(value)["id"] == item["id"] == key.decode()
        assert item["id"].startswith("u-"), "the id comes from the url, not the feed's guid"
    if name == "wire.rss":
        assert items[0]["source"] == "Example Front Line"
        assert items[0]["text"] == "Russian forces launched a missile strike on Kharkiv overnight."


def test_reading_twice_gives_the_same_ids(tmp_path):
    text = tmp_path / "lines.txt"
    text.write_text("Russia launched a missile strike on Kharkiv.\nPeace talks resume in Istanbul.\n")
    for path, kw in [(DATA / "wire.rss", {}), (DATA / "wire.csv", {"mapping": {"text": "body"}}), (text, {})]:
        first = [i["id"] for i in valid(path, **kw)]
        assert first and first == [i["id"] for i in valid(path, **kw)]


def test_not_a_feed_and_unknown_format(tmp_path):
    f = tmp_path / "page.xml"
    f.write_text("<html><body>not a feed</body></html>")
    with pytest.raises(FeedError, match="not an RSS or Atom feed"):
        list(read_feed(str(f)))
    with pytest.raises(FeedError, match="use one of"):
        list(read_feed(str(f), fmt="yaml"))


def test_content_sniffing_without_a_suffix(tmp_path):
    rss = tmp_path / "feed"
    rss.write_bytes((DATA / "wire.rss").read_bytes())
    assert len(valid(rss)) == 2
    jsonl = tmp_path / "items"
    jsonl.write_text('{"text": "Peace talks resume."}\n')
    assert valid(jsonl)[0]["text"] == "Peace talks resume."


def test_text_items_over_the_size_limit_are_rejected(tmp_path):
    f = tmp_path / "big.txt"
    f.write_text("short line\n" + "x" * 3000 + "\n")
    records = list(read_feed(str(f), max_bytes=2048))
    assert records[0].item and records[1].error.reason == "too_large"


def test_dates_and_html():
    assert to_rfc3339("Mon, 23 Nov 2026 06:10:00 +0200") == "2026-11-23T04:10:00Z"
    assert to_rfc3339("2026-11-23T09:30:00+01:00") == "2026-11-23T08:30:00Z"
    assert to_rfc3339("yesterday") is None
    assert html_to_text("<p>A <b>missile</b> strike</p><script>x()</script><p>&amp; more</p>") == \
        "A missile strike & more"


def run_push(*args, input=None):
    runner = CliRunner()
    return runner.invoke(main, ["push", "--dry-run", *args], input=input,
                         env={"SIGNALWATCH_BROKER": "kafka://127.0.0.1:1"})


def test_push_dry_run_counts_and_reasons_without_a_broker():
    result = run_push("--map", "title=headline", "--map", "text=body", "--map", "published_at=date",
                      str(DATA / "wire.csv"), str(DATA / "wire.atom"))
    assert result.exit_code == 0, result.output
    assert "dry run: 3 valid items" in result.output
    assert "rejected 2 (no_text 1, schema 1)" in result.output
    assert "wire.csv:4: no_text" in result.output


def test_push_reads_stdin_and_explicit_formats():
    feed = (DATA / "wire.rss").read_bytes()
    result = run_push("--format", "rss", "-", input=feed)
    assert result.exit_code == 0, result.output
    assert "dry run: 2 valid items" in result.output
    lines = b'{"text": "Peace talks resume."}\n{broken\n'
    result = run_push("-", input=lines)
    assert "dry run: 1 valid items" in result.output and "rejected 1 (not_json 1)" in result.output


@pytest.mark.parametrize(("args", "message"), [
    (["--map", "text=nope", str(DATA / "wire.csv")], "column 'nope' not in CSV header"),
    (["does-not-exist.jsonl"], "does-not-exist.jsonl: no such file"),
    (["--map", "oops", str(DATA / "wire.csv")], "use FIELD=COLUMN"),
])
def test_push_errors_name_the_fix(args, message):
    result = run_push(*args)
    assert result.exit_code != 0 and message in result.output
