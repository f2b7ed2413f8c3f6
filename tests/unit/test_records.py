"""Parsing, validation, ids and dead letters of news items (no broker)."""

from __future__ import annotations

import base64

import orjson
import pytest

from streams.records import InvalidItem, dead_letter, derive_id, normalise_url, parse_item


def reason_of(raw) -> str:
    with pytest.raises(InvalidItem) as info:
        parse_item(raw, max_bytes=2048)
    return info.value.reason


def test_valid_item_gets_a_derived_id_and_keeps_unknown_fields():
    item = parse_item(b'{"title": " Talks in Istanbul ", "url": "https://x.org/a", "extra": {"k": 1}}')
    assert item["title"] == "Talks in Istanbul"
    assert item["text"] == ""
    assert item["extra"] == {"k": 1}
    assert item["id"].startswith("u-")


@pytest.mark.parametrize(("raw", "reason"), [
    (b"", "empty"),
    (None, "empty"),
    (b"x" * 3000, "too_large"),
    (b'{"text": "caf\xe9"}', "bad_utf8"),
    (b'{"text": "ok"}\xff', "bad_utf8"),  # after valid JSON
    (b'{"text": "\xed\xa0\x80"}', "bad_utf8"),  # an encoded surrogate
    (b'{not json \xe9', "bad_utf8"),  # bad UTF-8 is named before bad JSON
    (b"{not json", "not_json"),
    (b"[1, 2]", "not_object"),
    (b'"just a string"', "not_object"),
    (b'{"title": 5}', "schema"),
    (b'{"text": "ok", "published_at": "yesterday"}', "schema"),
    (b'{"text": "   "}', "no_text"),
    (b'{"url": "https://x.org"}', "no_text"),
])
def test_invalid_messages_get_a_reason(raw, reason):
    assert reason_of(raw) == reason


def test_schema_error_names_the_field():
    with pytest.raises(InvalidItem) as info:
        parse_item(b'{"text": "ok", "source": 12}')
    assert "source" in info.value.detail


def test_rfc3339_timestamps_are_accepted():
    item = parse_item(b'{"text": "ok", "published_at": "2026-11-20T08:00:00+02:00"}')
    assert item["published_at"].startswith("2026-11-20")


def test_url_normalisation_folds_tracking_scheme_host_and_slash():
    a = normalise_url("http://www.Example.org/news/story/?utm_source=x&b=2&a=1#top")
    b = normalise_url("https://example.org/news/story?a=1&b=2")
    assert a == b


def test_id_is_own_then_url_then_content():
    assert derive_id({"id": "abc", "url": "https://x.org/1"}) == "abc"
    assert derive_id({"url": "https://x.org/1?utm_medium=rss"}) == derive_id({"url": "http://x.org/1"})
    one = derive_id({"title": "Ceasefire  talks", "text": "Text"})
    assert one == derive_id({"title": "ceasefire talks", "text": "text "})
    assert one.startswith("c-") and one != derive_id({"title": "other", "text": "Text"})


def test_dead_letter_keeps_the_original_bytes_and_reason():
    original = b'\xff\xfe{"broken'
    record = orjson.loads(dead_letter("bad_utf8", "not valid UTF-8 at byte 0", original,
                                      topic="news.raw", partition=3, offset=42, key=b"k1"))
    assert base64.b64decode(record["original"]) == original
    assert record["reason"] == "bad_utf8" and record["partition"] == 3 and record["offset"] == 42
    assert base64.b64decode(record["key"]) == b"k1"
    assert record["original_size"] == len(original)


@pytest.mark.parametrize("stamp", ["2026-13-01T00:00:00Z", "2026-11-20T08:00:00", "20 Nov 2026"])
def test_timestamps_must_be_rfc3339_with_zone(stamp):
    assert reason_of(orjson.dumps({"text": "ok", "published_at": stamp})) == "schema"


@pytest.mark.parametrize("url", ["http://[bad", "https://a:99999/p"])
def test_an_unusable_url_is_rejected_even_when_the_item_has_an_id(url):
    assert reason_of(orjson.dumps({"id": "x1", "text": "ok", "url": url})) == "schema"
