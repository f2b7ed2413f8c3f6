"""Event-time tumbling windows, a rolling baseline and the surge / divergence rules (pure).

A window is ``[start, start + size)`` with ``start = floor(t / size) * size`` in event time
(``published_at``, else the time the worker received the item), so a replay of old items lands in the
same windows as the live run did. The baseline of a window is an EWMA (and exponentially weighted
variance) of the counts of the ``lookback`` windows before it, missing windows counting 0. Because the
baseline is a function of the stored counts of earlier windows (not of arrival order), a backfill in
event-time order reproduces the live result. A window surges when its count reaches
``max(min_count, mean + z * max(std, sqrt(mean), 1))``: the std floor (Poisson-like) keeps a perfectly
flat baseline from alerting on one extra item.
"""

from __future__ import annotations

import hashlib
import math
from datetime import datetime, timezone

from streams.records import epoch

EWMA_ALPHA = 0.3
KIND_TOTAL = "*"
"""Category name of a kind's total (``escalation/*``)."""


def event_time(item: dict) -> float:
    """Epoch seconds of ``published_at``, falling back to ``received_at`` (then 0)."""
    for name in ("published_at", "received_at"):
        value = item.get(name)
        if value:
            try:
                return epoch(str(value))
            except ValueError:
                continue
    return 0.0


class EventClock:
    """Event time for what must happen while the feed is quiet (talks deadlines, cooldown digests): the newest
    event time seen, never ahead of the wall clock (a future-dated item cannot move it past now), plus the
    wall time since it last moved. A replay of old news keeps its own dates; time still passes without items."""

    def __init__(self, watermark: float = float("-inf"), wall: float = 0.0) -> None:
        self.watermark = watermark
        self.moved_at = wall  # wall time the watermark last moved

    def see(self, at: float, wall: float) -> None:
        """An item of event time ``at`` arrived at ``wall``."""
        at = min(at, wall)
        if at > self.watermark:
            self.watermark, self.moved_at = at, wall

    def now(self, wall: float) -> float:
        return self.watermark + max(0.0, wall - self.moved_at)


def iso(t: float) -> str:
    """RFC 3339 UTC of epoch seconds (whole seconds)."""
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def window_start(t: float, size: int) -> int:
    """Start (epoch seconds) of the tumbling window of ``size`` seconds that holds ``t``."""
    return int(math.floor(t / size) * size)


def trend_keys(tagged: dict) -> list[str]:
    """The keys a tagged item counts for: ``kind/category`` of each counting signal, ``kind/*`` of each
    label, ``actor/<name>`` of each actor of an item with counting signals. Each key once. A signal that does
    not count (hypothetical, historical, negated: ``counts: false``) raises no label, so no surge either."""
    signals = [s for s in tagged.get("signals") or () if s.get("counts", True)]
    if not signals:
        return []
    keys = [f"{s['kind']}/{s['category']}" for s in signals]
    keys += [f"{kind}/{KIND_TOTAL}" for kind in dict.fromkeys(s["kind"] for s in signals)]
    keys += [f"actor/{a}" for a in tagged.get("actors") or ()]
    return list(dict.fromkeys(keys))


def baseline(previous: list[int], alpha: float = EWMA_ALPHA) -> tuple[float, float]:
    """EWMA mean and standard deviation of window counts, oldest first."""
    if not previous:
        return 0.0, 0.0
    mean, var = float(previous[0]), 0.0
    for count in previous[1:]:
        diff = count - mean
        incr = alpha * diff
        mean += incr
        var = (1 - alpha) * (var + diff * incr)
    return mean, math.sqrt(max(var, 0.0))


def threshold(mean: float, std: float, min_count: int, z: float) -> float:
    """The count at which a window surges over its baseline."""
    return max(float(min_count), mean + z * max(std, math.sqrt(mean), 1.0))


def index(count: int, mean: float) -> float:
    """0-1 activity index of a window: 0 when empty, 0.5 at the baseline, towards 1 in a surge."""
    return count / (count + max(mean, 1.0)) if count > 0 else 0.0


def trend_alert_id(rule: str, key: str, size: int, start: int) -> str:
    """Deterministic id: same rule, key and window -> same id (repeats after a restart are recognisable)."""
    return "tre-" + hashlib.sha256(f"{rule}|{key}|{size}|{start}".encode()).hexdigest()[:24]


def surge_alert(key: str, size: int, start: int, count: int, mean: float, std: float, *, item_ids: list[str],
                evidence: list[str], actors: list[str], lexicon_version: str, created_at: str) -> dict:
    """The ``alerts.trend`` record of a surge of ``key`` (``kind/category``) in one window."""
    kind, _, category = key.partition("/")
    minutes = size // 60
    return {
        "alert_id": trend_alert_id("surge", key, size, start),
        "type": "trend",
        "rule": "surge",
        "key": key,
        "severity": "high" if count >= 2 * max(mean, 1.0) + 3 * max(std, 1.0) else "medium",
        "summary": (f"surge: {key} {count} items in the {minutes}-min window from {iso(start)} "
                    f"(baseline {mean:.1f} ± {std:.1f})"),
        "item_ids": item_ids,
        "categories": [category] if category != KIND_TOTAL else [],
        "kind": kind,
        "actors": actors,
        "evidence": evidence,
        "created_at": created_at,
        "lexicon_version": lexicon_version,
        "window_start": iso(start),
        "window_end": iso(start + size),
        "window_seconds": size,
        "count": count,
        "baseline": round(mean, 3),
        "baseline_std": round(std, 3),
    }


def divergence_alert(size: int, start: int, counts: dict[str, int], means: dict[str, float], *,
                     item_ids: list[str], lexicon_version: str, created_at: str) -> dict:
    """"Talks while strikes surge": negotiation and escalation totals both surge in one window."""
    minutes = size // 60
    return {
        "alert_id": trend_alert_id("divergence", "escalation+negotiation", size, start),
        "type": "trend",
        "rule": "divergence",
        "key": "divergence",
        "severity": "high",
        "summary": (f"talks while strikes surge: {counts['escalation']} escalation and "
                    f"{counts['negotiation']} negotiation items in the {minutes}-min window from {iso(start)} "
                    f"(baselines {means['escalation']:.1f} / {means['negotiation']:.1f})"),
        "item_ids": item_ids,
        "categories": [],
        "actors": [],
        "evidence": [],
        "created_at": created_at,
        "lexicon_version": lexicon_version,
        "window_start": iso(start),
        "window_end": iso(start + size),
        "window_seconds": size,
        "count": counts["escalation"] + counts["negotiation"],
        "baseline": round(means["escalation"] + means["negotiation"], 3),
        "counts": counts,
    }
