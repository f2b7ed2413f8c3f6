"""10,000 fuzzed messages through a real worker on a broker of its own, valid items flowing alongside.

Exact accounting: every invalid message is in news.deadletter once, under its own key, with the
reason the ingest path gives it offline; every accepted item id is in news.tagged once (repeated ids
are counted as duplicates by the worker); the worker is still up and tagging afterwards.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections import Counter

import orjson

from streams.records import InvalidItem, parse_item
from tests.conftest import TopicDrain, send_items
from tests.unit.test_fuzz_ingest import fuzz_messages

FUZZED = 10_000
CLEAN = 2_000
MAX_BYTES = 64 * 1024


def _metric(text: str, name: str, labels: str = "") -> float:
    pattern = re.compile(rf"^{re.escape(name)}{re.escape(labels)} (\S+)$", re.M)
    return sum(float(v) for v in pattern.findall(text))


def test_fuzzed_messages_are_dead_lettered_or_tagged_exactly_once(isolated_kafka):
    # repeated ids only: the clean items share one text under distinct ids, and each must be tagged once
    worker = isolated_kafka.start_worker(extra_env={"SIGNALWATCH_MAX_ITEM_BYTES": str(MAX_BYTES),
                                                    "SIGNALWATCH_DEDUP_STORIES": "0"})
    settings = worker.settings
    values: list[bytes] = []
    keys: list[bytes] = []
    expected_reason: dict[bytes, str] = {}
    accepted_ids: list[str] = []
    fuzz = fuzz_messages(FUZZED, seed=7, max_bytes=MAX_BYTES)
    for i in range(FUZZED + CLEAN + 1):
        if i == FUZZED + CLEAN:  # over the item limit, under the broker's 4 MiB message limit
            raw = orjson.dumps({"text": "y" * (3 * 1024 * 1024)})
        elif i % 6 == 5 and i // 6 < CLEAN:
            raw = orjson.dumps({"id": f"clean-{i}", "title": "Kremlin", "text": "ready for peace talks"})
        else:
            raw = next(fuzz)[1]
        key = f"m{i}".encode()
        try:
            accepted_ids.append(parse_item(raw, MAX_BYTES)["id"])
        except InvalidItem as exc:
            expected_reason[key] = exc.reason
        values.append(raw)
        keys.append(key)
    assert next(fuzz, None) is None, "every fuzzed message was sent"
    distinct_ids = set(accepted_ids)
    assert len(expected_reason) > 3000 and len(distinct_ids) > 3000 and sum(
        1 for i in distinct_ids if i.startswith("clean-")) >= CLEAN

    send_items(settings, values, keys)
    drain = TopicDrain(settings, [settings.topics.tagged, settings.topics.deadletter])
    try:
        def tagged_ids(records):
            return {orjson.loads(r.value)["id"] for r in records[settings.topics.tagged]}

        def done(records):
            return (len(records[settings.topics.deadletter]) >= len(expected_reason)
                    and distinct_ids <= tagged_ids(records))

        finished = drain.until(done, timeout=240, settle=5)
        tagged = [orjson.loads(r.value) for r in drain.records[settings.topics.tagged]]
        letters = [orjson.loads(r.value) for r in drain.records[settings.topics.deadletter]]
    finally:
        drain.close()
    assert finished, (f"tagged {len(tagged)}/{len(distinct_ids)}, dead letters {len(letters)}/{len(expected_reason)}"
                      f"\n{worker.log.read_text()[-3000:]}")

    # dead letters: one per invalid message, by key, with the offline reason and the original bytes
    by_key = Counter(base64.b64decode(letter["key"]) for letter in letters)
    assert set(by_key) == set(expected_reason) and set(by_key.values()) == {1}
    sent = dict(zip(keys, values, strict=True))
    for letter in letters:
        key = base64.b64decode(letter["key"])
        assert letter["reason"] == expected_reason[key], (key, letter["detail"])
        assert letter["original_size"] == len(sent[key])
        kept = base64.b64decode(letter["original"])
        assert letter["original_truncated"] == (len(kept) < len(sent[key])) and sent[key].startswith(kept)
        assert letter["original_sha256"] == hashlib.sha256(sent[key]).hexdigest()
    assert sum(1 for letter in letters if letter["original_truncated"]) == 1  # the 3 MiB one

    # tagged: every accepted id once (plus the readiness probe), nothing else
    ids = Counter(t["id"] for t in tagged if not t["id"].startswith("probe-"))
    assert set(ids) == distinct_ids and set(ids.values()) == {1}
    assert sum(1 for t in tagged if t["id"].startswith("clean-") and t["labels"] == ["negotiation"]) == CLEAN

    metrics = worker.metrics()
    assert _metric(metrics, "signalwatch_items_duplicate_total") == len(accepted_ids) - len(distinct_ids)
    for reason, n in Counter(expected_reason.values()).items():
        assert _metric(metrics, "signalwatch_items_invalid_total", f'{{reason="{reason}"}}') == n, reason
    assert worker.proc.poll() is None
    assert "Traceback" not in worker.log.read_text()
