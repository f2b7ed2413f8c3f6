"""Fuzz of the ingest path: records.parse_item, then tagging and the tagged record on accepted items.

Every message must end in exactly one of two ways: accepted (a valid item whose tagged record
serialises) or :class:`InvalidItem` with a known reason (whose dead letter serialises). Anything
else -- another exception, a bad offset, an unserialisable record -- is a bug the worker would turn
into an ``internal_error`` dead letter at best.

Two generators: a seeded mutational fuzzer (``FUZZ_MESSAGES`` messages, default 100,000: valid
items, byte flips, truncations, splices, invalid UTF-8, huge strings, deep nesting, wrong types,
control and right-to-left characters) and hypothesis strategies (arbitrary bytes, arbitrary JSON,
item-shaped objects with hostile field values). ``fuzz_messages`` is shared with the worker-level
test in tests/integration/test_bad_input.py.
"""

from __future__ import annotations

import base64
import hashlib
import os
import random
from collections import Counter
from collections.abc import Iterator

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.alerting import build_alerts
from streams.analytics.dedup import Features
from streams.analytics.event_identity import event_key, same_event
from streams.analytics.shard import Entry, Tagged, batch_records, read_batch, trend_record
from streams.records import (
    DEAD_LETTER_ORIGINAL_MAX,
    InvalidItem,
    dead_letter,
    parse_item,
    tagged_item,
    validator,
)
from streams.sources import default_registry
from streams.tagging import load_tagger

REASONS = {"empty", "too_large", "bad_utf8", "not_json", "not_object", "schema", "no_text"}
MAX_BYTES = 64 * 1024  # small limit so "too large" is cheap to produce; the worker test uses the default
FUZZ_MESSAGES = int(os.environ.get("FUZZ_MESSAGES", "100000"))

_WORDS = ("missile strike on Kharkiv", "ceasefire talks in Istanbul", "Kremlin rejects", "Zelensky",
          "drones hit the grid", "prisoner exchange", "не будет переговоров", "обстріл Харкова",
          "ATACMS", "NATO", "mobilisation", "the weather was mild", "Путин", "Зеленський")
_ODD = ("\u202e", "\u202b", "\u200f", "\u061c", "\u2066", "\u0000", "\u0007", "\u001b[31m", "\r\n", "\t",
        "\ufeff", "\u0130", "\u1e9e", "ß", "ﬁ", "\U0001f4a3", "\u0301", "\u00a0", "\u2028", "\ud7ff",
        "مرحبا", "שלום", "\u0627\u0644\u0633\u0644\u0627\u0645", "İSTANBUL", "\\", '"', "\u3000")
_WRONG = (None, True, False, 0, -1, 2**63 - 1, 1.5e308, -0.0, [], {}, [1, "a"], {"a": {"b": None}}, "", " ",
          "\n\t", "x" * 600)
_FIELDS = ("id", "title", "text", "url", "source", "published_at", "language")


def _text(rnd: random.Random, n: int) -> str:
    parts = []
    for _ in range(n):
        r = rnd.random()
        parts.append(rnd.choice(_ODD) if r < 0.25 else rnd.choice(_WORDS) if r < 0.9 else chr(rnd.randrange(0x20, 0x2FFF)))
    return " ".join(parts)


def _valid(rnd: random.Random, i: int) -> dict:
    item: dict = {"text": _text(rnd, rnd.randint(1, 60))}
    if rnd.random() < 0.6:
        item["title"] = _text(rnd, rnd.randint(1, 8))
    if rnd.random() < 0.5:
        item["id"] = f"fz-{i}-{rnd.randrange(10**6)}"
    if rnd.random() < 0.4:
        item["url"] = rnd.choice(("https://example.org/a?utm_source=x&b=1#frag", "http://WWW.Example.org/b/",
                                  "https://[::1]:8443/x", "ftp://host/p", "//no-scheme", "not a url",
                                  f"https://example.org/{i}", "https://例え.jp/記事"))
    if rnd.random() < 0.3:
        item["published_at"] = rnd.choice(("2026-11-24T10:00:00Z", "2026-11-24 10:00:00+02:00",
                                           "2026-11-24T10:00:00.123456-05:30", "2026-11-24"))
    if rnd.random() < 0.2:
        item["extra"] = {"nested": [_text(rnd, 2), {"k": rnd.random()}], "n": rnd.randrange(-10**9, 10**9)}
    return item


def _deep(rnd: random.Random) -> bytes:
    depth = rnd.choice((10, 500, 1023, 1024, 1025, 5000))
    if rnd.random() < 0.5:
        return b"[" * depth + b"]" * depth
    inner = b'{"a":' * depth + b"1" + b"}" * depth
    return b'{"text": "deep", "extra": ' + inner + b"}"


def _mutate(rnd: random.Random, raw: bytes) -> bytes:
    b = bytearray(raw)
    for _ in range(rnd.randint(1, 8)):
        op = rnd.randrange(6)
        pos = rnd.randrange(len(b) + 1)
        if op == 0 and b:  # flip a byte
            b[min(pos, len(b) - 1)] = rnd.randrange(256)
        elif op == 1:  # truncate
            del b[pos:]
        elif op == 2:  # insert junk (often not UTF-8)
            b[pos:pos] = bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 6)))
        elif op == 3:  # insert a structural character
            b[pos:pos] = rnd.choice((b'"', b"{", b"}", b"[", b"]", b",", b":", b"\\", b"\\u", b"\\ud800"))
        elif op == 4 and b:  # duplicate a slice
            j = rnd.randrange(len(b))
            b[pos:pos] = b[j:j + rnd.randint(1, 40)]
        else:  # overlong / surrogate UTF-8 sequences
            b[pos:pos] = rnd.choice((b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xff", b"\xe2\x82"))
    return bytes(b)


def _wrong_types(rnd: random.Random, i: int) -> dict:
    item = _valid(rnd, i)
    for name in rnd.sample(_FIELDS, rnd.randint(1, 3)):
        item[name] = rnd.choice(_WRONG)
    return item


def fuzz_messages(n: int, seed: int = 20261124, max_bytes: int = MAX_BYTES) -> Iterator[tuple[str, bytes]]:
    """``n`` (kind, message) pairs: a deterministic mix of valid, broken and hostile messages."""
    rnd = random.Random(seed)
    for i in range(n):
        r = rnd.random()
        if r < 0.25:
            yield "valid", orjson.dumps(_valid(rnd, i))
        elif r < 0.55:
            yield "mutated", _mutate(rnd, orjson.dumps(_valid(rnd, i)))
        elif r < 0.70:
            yield "wrong_types", orjson.dumps(_wrong_types(rnd, i))
        elif r < 0.78:
            yield "random_bytes", bytes(rnd.randrange(256) for _ in range(rnd.randint(0, 200)))
        elif r < 0.84:
            value = rnd.choice(_WRONG + ("a string", 12, [{"text": "in a list"}]))
            yield "not_object", orjson.dumps(value)
        elif r < 0.88:
            yield "deep", _deep(rnd)
        elif r < 0.90:
            size = rnd.choice((max_bytes - 64, max_bytes - 8, max_bytes + 1, 3 * max_bytes))
            body = rnd.choice(("x", "é", "\u202e", "удар ", "\U0001f4a3"))
            text = body * (size // len(body.encode()))
            yield "huge", orjson.dumps({"title": "huge", "text": text})[:size + 40]
        elif r < 0.95:  # JSON text with escapes that decode to control / RTL / surrogate code points
            esc = rnd.choice(("\\u0000", "\\u202e", "\\ud83d\\udca3", "\\ud800", "\\udfff", "\\u0007", "\\/",
                              "\\x41", "\\'"))
            yield "escapes", b'{"title": "t' + esc.encode() + b'", "text": "missile strike ' + esc.encode() + b'"}'
        else:
            yield "empty_or_ws", rnd.choice((b"", b" ", b"\n", b"null", b"{}", b'{"title": " "}',
                                             b'{"text": "\\u00a0\\u2028"}', b"\xef\xbb\xbf{}"))


_TAGGER = None


def tagger():
    global _TAGGER
    if _TAGGER is None:
        _TAGGER = load_tagger()
    return _TAGGER


def check(raw: bytes, max_bytes: int = MAX_BYTES) -> str:
    """Run one message through the ingest path; return ``accepted`` or the dead-letter reason."""
    try:
        item = parse_item(raw, max_bytes)
    except InvalidItem as exc:
        assert exc.reason in REASONS, exc.reason
        assert isinstance(exc.detail, str) and exc.detail
        letter = orjson.loads(dead_letter(exc.reason, exc.detail, raw, topic="news.raw", partition=0, offset=1))
        assert letter["reason"] == exc.reason and letter["original_size"] == len(raw)
        validator("deadletter.v1.json").validate(letter)
        return exc.reason
    assert isinstance(item["id"], str) and item["id"]
    item["id"].encode()  # the decide stage keys news.tagged by it
    assert isinstance(item["title"], str) and isinstance(item["text"], str)
    assert (item["title"] + item["text"]).strip()
    # what the process stage does: tag, then the entry that goes to the story shard in a batch record
    item = orjson.loads(orjson.dumps(item))
    tags = tagger().tag(item["title"], item["text"])
    doc = f"{item['title']}\n{item['text']}" if item["title"] else item["text"]
    assert set(tags["labels"]) <= {"escalation", "negotiation"}
    for signal in tags["signals"]:
        assert 0 <= signal["start"] <= signal["end"] <= len(doc)
        assert doc[signal["start"]:signal["end"]] == signal["text"]
    assert 0 <= tags["escalation_score"] <= 1 and 0 <= tags["negotiation_score"] <= 1
    tagged = tagged_item(item, tags, "2026-11-24T00:00:00.000Z")
    key = event_key(item["title"], item["text"], tags)
    copy = default_registry().attribute(item).copy(item["id"], item.get("url", ""))
    entry = Entry.of(Tagged.of(tagged), build_alerts(tagged, "low"), Features.of(item, event=key),
                     trend_record(tagged), 0.0, copy)
    [again] = read_batch(batch_records([entry.wire()])[0])
    assert again.features == entry.features and again.tagged["id"] == item["id"] == again.tagged.item_id
    assert again.features.event_key == key and same_event(key, key)
    return "accepted"


def test_mutational_fuzz_of_the_ingest_path():
    kinds: Counter = Counter()
    outcomes: Counter = Counter()
    for kind, raw in fuzz_messages(FUZZ_MESSAGES):
        kinds[kind] += 1
        try:
            outcomes[check(raw)] += 1
        except Exception as exc:  # pragma: no cover - the failure report
            pytest.fail(f"{kind} message crashed the ingest path: {exc!r}\n{raw[:300]!r}")
    assert sum(outcomes.values()) == FUZZ_MESSAGES
    # the generator really exercises both branches and every reason the ingest path knows
    assert outcomes["accepted"] > FUZZ_MESSAGES // 5
    assert {r for r in REASONS if outcomes[r]} == REASONS, outcomes
    print(f"\nfuzz: {FUZZ_MESSAGES} messages, kinds {dict(kinds)}, outcomes {dict(outcomes)}")


@pytest.mark.parametrize(("raw", "detail"), [
    (b'{"text": "x", "url": "http://[bad"}', "url"),  # urlsplit: Invalid IPv6 URL (was a ValueError)
    (b'{"text": "x", "url": "https://a:99999/p"}', "url"),  # port out of range (was a ValueError)
    (b'{"text": "x", "extra": ' + b"[" * 300 + b"]" * 300 + b"}", "nested"),  # orjson.dumps: 255 levels
])
def test_found_by_fuzzing_are_dead_lettered_as_schema(raw, detail):
    assert check(raw) == "schema"
    with pytest.raises(InvalidItem, match=detail):
        parse_item(raw)


def test_dead_letter_of_a_message_over_the_broker_request_limit_fits():
    raw = b"x" * (3 * 1024 * 1024)  # 4 MiB as base64: the producer refused it and the agent crashed
    letter = orjson.loads(dead_letter("too_large", "big", raw, topic="news.raw", partition=0, offset=0))
    assert letter["original_truncated"] and letter["original_size"] == len(raw)
    assert len(base64.b64decode(letter["original"])) == DEAD_LETTER_ORIGINAL_MAX
    assert letter["original_sha256"] == hashlib.sha256(raw).hexdigest()
    validator("deadletter.v1.json").validate(letter)


def test_fuzz_is_deterministic():
    assert list(fuzz_messages(200)) == list(fuzz_messages(200))


# ------------------------------------------------------------------ hypothesis
_json = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=25,
)
_hostile_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=300) | st.sampled_from(_ODD)
_items = st.fixed_dictionaries({}, optional={
    "id": _hostile_text | _json, "title": _hostile_text | _json, "text": _hostile_text | _json,
    "url": _hostile_text | st.sampled_from(("http://[x", "http://a:99999", "https://ok.org/p?a=1")),
    "source": _hostile_text, "published_at": _hostile_text | st.just("2026-11-24T10:00:00Z"),
    "language": _hostile_text | _json, "extra": _json,
})
_FAST = settings(max_examples=int(os.environ.get("FUZZ_HYPOTHESIS_EXAMPLES", "500")), deadline=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@_FAST
@given(st.binary(max_size=2000))
def test_hypothesis_arbitrary_bytes(raw):
    check(raw)


@_FAST
@given(_json)
def test_hypothesis_arbitrary_json(value):
    check(orjson.dumps(value))


@_FAST
@given(_items)
def test_hypothesis_item_shaped_objects(item):
    check(orjson.dumps(item))


@_FAST
@given(_items, st.data())
def test_hypothesis_mutated_items(item, data):
    raw = bytearray(orjson.dumps(item))
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(raw)))
        raw[pos:pos] = data.draw(st.binary(min_size=1, max_size=4))
    check(bytes(raw))


def _python_verdict(item: dict) -> bool:
    return not any(validator("news-item.v1.json").iter_errors(item))


def test_the_fast_validation_path_never_accepts_what_the_schema_rejects():
    """records._valid_fast (jsonschema-rs) only short-cuts the Python validator: on every decodable object
    of the mutational fuzz it says yes only where the Python validator finds no error."""
    from streams.records import _valid_fast

    checked = fast_yes = 0
    for _, raw in fuzz_messages(20_000, seed=7):
        try:
            item = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(item, dict):
            continue
        checked += 1
        if _valid_fast(item):
            fast_yes += 1
            assert _python_verdict(item), item
    assert checked > 5000 and fast_yes > 1000  # both verdicts were exercised


@_FAST
@given(_items)
def test_hypothesis_fast_validation_agrees_with_the_schema(item):
    from streams.records import _valid_fast

    if _valid_fast(item):
        assert _python_verdict(item), item
