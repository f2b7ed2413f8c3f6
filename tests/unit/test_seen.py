"""The tag stage's memory of tagged items: entries round-trip, expire per partition in arrival order."""

from __future__ import annotations

from streams.analytics.seen import Expiry, SeenEntry


def test_entries_round_trip_and_legacy_values_parse():
    alerts = [{"alert_id": "x", "severity": "low", "summary": "negotiation: ceasefire (proposed) " * 10}]
    entry = SeenEntry(100.5, 3, 90.0, alerts)
    assert SeenEntry.loads(entry.dumps(), 0) == entry
    assert len(entry.dumps()) < len(str(alerts)) / 2  # entries with alerts are stored compressed
    assert SeenEntry.loads(SeenEntry(1.0, 0, 1.0).dumps(), 0).alerts == []
    legacy = SeenEntry.loads(b"2026-11-24T10:00:00Z", now=5.0)
    assert legacy.partition == -1 and legacy.received == 1795514400.0 and legacy.alerts == []
    assert SeenEntry.loads(b"garbage", now=5.0).received == 5.0


def test_expiry_takes_only_old_keys_of_the_asked_partition():
    expiry = Expiry()
    expiry.add(0, 10.0, b"a")
    expiry.add(1, 11.0, b"b")
    expiry.add(0, 50.0, b"c")
    assert expiry.expired(0, now=100.0, horizon=60.0) == [b"a"]  # c is 50 s old: kept
    assert expiry.expired(0, now=100.0, horizon=60.0) == []
    assert expiry.expired(1, now=100.0, horizon=60.0) == [b"b"]
    assert expiry.expired(0, now=200.0, horizon=60.0) == [b"c"]
    assert len(expiry) == 0


def test_rebuild_orders_by_receive_time_and_skips_legacy_entries():
    expiry = Expiry()
    expiry.rebuild([(b"late", SeenEntry(30.0, 0, 0.0)), (b"early", SeenEntry(10.0, 0, 0.0)),
                    (b"legacy", SeenEntry(5.0, -1, 0.0))])
    assert len(expiry) == 2
    assert expiry.expired(0, now=35.0, horizon=10.0) == [b"early"]


def test_overflow_takes_the_oldest_keys_beyond_the_cap_of_one_partition():
    expiry = Expiry()
    for i in range(5):
        expiry.add(0, float(i), f"k{i}".encode())
    expiry.add(1, 0.0, b"other")
    assert expiry.overflow(0, 2) == [b"k0", b"k1", b"k2"]
    assert expiry.overflow(0, 2) == []
    assert expiry.overflow(1, 2) == []
    assert len(expiry) == 3
