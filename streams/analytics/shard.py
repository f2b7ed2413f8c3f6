"""The story shard: every stateful decision of the pipeline, over plain dicts (no Kafka, no Faust).

The process stage (streams.app) parses, validates, sketches, tags and builds candidate alerts for each
item, and sends the accepted ones as :class:`Entry` records, a whole batch per Kafka record, to the one
place where the state lives. There :meth:`StoryShard.decide` takes each entry in order:

* dedup: the item's story is looked up by id, url, content and near-duplicate sketch, a sketch candidate
  confirmed only when it reports the same event (streams.analytics.dedup); a copy only counts;
* corroboration: each story keeps its copies' attributions (outlet, origin, camp: streams.sources,
  looked up by the process stage), one per distinct (outlet, origin) up to :data:`MAX_COPIES`; its alerts
  carry :func:`streams.sources.corroborate` of them and are re-sent under the same id, at the severity the
  registry's rules give, whenever the origins of listed camps grow;
* a first copy goes out as a tagged item, its alerts through the cooldown (streams.analytics.cooldown:
  what it holds back is counted in the next alert of the key),
  its trend keys into the event-time windows, whose surges and divergences go through the cooldown too
  (streams.analytics.trend);
* an update (a known id whose text changed: a correction) goes out again as the story's next
  ``revision``, and those of its alerts that now say something else are re-sent under their ids; it is
  neither a copy nor a new event, so it counts in no window and corroborates nothing.

State and how it survives (docs/architecture.md): the stories of one input record are stored as one
*segment* (one changelog record per batch, not per item); cooldown and window entries are written once per
batch for the keys the batch changed (:attr:`StoryShard.changes`). :meth:`StoryShard.restore` rebuilds
everything from those records. Every entry has a *position* (input offset and place in its record): a
story remembers the position of its first copy, cooldown state the position that sent an alert and each
window the last position it counted, so replaying an input record after a crash re-sends what it sent
(same ids and revisions) and counts nothing twice: a record whose segment is held was decided before, and
its entries count as ``redelivered``, not as duplicates.
"""

from __future__ import annotations

import base64
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field

import orjson

from streams.alerting import corroborated, severity_rank
from streams.analytics import cooldown, trend
from streams.analytics.dedup import DedupIndex, Features, Story
from streams.records import now_iso
from streams.sources import SourceRegistry, default_registry
from streams.sources.corroboration import UNCOUNTED_CAMP

POSITION_BITS = 12
MAX_ENTRIES = 1 << POSITION_BITS
"""Most entries in one input record (their index is the low bits of a position)."""
MAX_IDS = 5
MAX_EVIDENCE = 3
MAX_COPIES = 32
"""Attributed copies kept per story (distinct outlet and origin; more only count)."""


def position(offset: int, index: int) -> int:
    """The position of entry ``index`` of the input record at ``offset``."""
    return (offset << POSITION_BITS) | index


@dataclass
class Entry:
    """One accepted item as the process stage hands it on: the tagged record, all its per-item alerts
    (any severity: corroboration may raise a low one), its dedup features, its trend record (None
    without signals), the epoch second it was received, its copy record
    (:meth:`streams.sources.Attribution.copy`: outlet, origin, camp) and where it was read (news.raw
    partition and offset; None: unknown, a record of the previous version)."""

    tagged: dict
    alerts: list[dict]
    features: Features
    trend: dict | None
    received: float
    copy: dict
    raw: tuple[int, int] | None = None

    def wire(self) -> dict:
        d = {"tagged": self.tagged, "alerts": self.alerts, "f": self.features.wire(), "trend": self.trend,
             "r": self.received, "c": self.copy}
        if self.raw is not None:
            d["o"] = list(self.raw)
        return d

    @classmethod
    def from_wire(cls, d: dict) -> Entry:
        raw = d.get("o")
        return cls(d["tagged"], d["alerts"], Features.from_wire(d["f"]), d["trend"], d["r"], d["c"],
                   (raw[0], raw[1]) if raw else None)


def trend_record(tagged: dict) -> dict | None:
    """What the trend windows need of a tagged item (None when it has no signals)."""
    keys = trend.trend_keys(tagged)
    if not keys:
        return None
    evidence = (tagged.get("title") or next((s["text"] for s in tagged["signals"]), ""))[:200]
    return {"keys": keys, "t": trend.event_time(tagged), "id": tagged["id"], "ev": evidence,
            "actors": tagged.get("actors", [])[:4], "lv": tagged.get("lexicon_version", "")}


@dataclass
class Config:
    """The shard's settings (see streams.settings.Settings for each)."""

    near_dup_threshold: float = 0.45
    dedup_horizon: float = 48 * 3600.0
    max_stories: int = 200_000
    alert_min_severity: str = "medium"
    alert_cooldown: float = 1800.0
    window_sizes: list[int] = field(default_factory=lambda: [900, 3600])
    trend_lookback: int = 8
    trend_min_count: int = 5
    trend_z: float = 3.0

    @classmethod
    def of(cls, settings) -> Config:
        return cls(settings.near_dup_threshold, settings.dedup_horizon, settings.max_stories,
                   settings.alert_min_severity, settings.alert_cooldown,
                   settings.window_sizes, settings.trend_lookback, settings.trend_min_count, settings.trend_z)


@dataclass
class Outcome:
    """What one input record decided: records to send and numbers for the metrics."""

    tagged: list[tuple[dict, float]] = field(default_factory=list)
    """First copies: (tagged record, receive epoch)."""
    updates: list[tuple[dict, float]] = field(default_factory=list)
    """Revisions of known stories (a known id with changed text), for news.tagged: (tagged, receive epoch)."""
    alerts: list[tuple[dict, float | None]] = field(default_factory=list)
    """Alerts that passed the cooldown: (alert, receive epoch of its item or None)."""
    duplicates: list[str] = field(default_factory=list)
    """The reason (id, url, content, near) of each copy."""
    redelivered: int = 0
    """Entries of an input record decided before (a replay after a crash): not duplicates; their first
    copies and updates are sent again, the same revision under the same ids, and nothing counts twice."""
    suppressed: list[tuple[str, str]] = field(default_factory=list)
    """(type, reason) of each alert not sent: ``cooldown`` (counted in the next alert of its key) or
    ``repeat`` (the same alert again, no higher)."""
    corroborations: int = 0
    """Stories whose origins or camps grew (their alerts were re-sent)."""
    evicted: int = 0
    """Stories forgotten before the horizon (the MAX_STORIES cap)."""
    window_counts: dict[tuple[int, str], int] = field(default_factory=dict)
    """(size, key) -> count of the newest window of each key this record counted in."""
    index: dict[str, float] = field(default_factory=dict)
    """kind -> activity index of its newest base window."""


@dataclass
class Changes:
    """Keys changed since the last flush, per store (value None: delete): written once per batch."""

    stories: dict[bytes, bytes | None] = field(default_factory=dict)
    cooldown: dict[bytes, bytes | None] = field(default_factory=dict)
    windows: dict[bytes, bytes | None] = field(default_factory=dict)

    def take(self) -> Changes:
        """The changes so far (and start afresh)."""
        out = Changes(self.stories, self.cooldown, self.windows)
        self.stories, self.cooldown, self.windows = {}, {}, {}
        return out

    def __len__(self) -> int:
        return len(self.stories) + len(self.cooldown) + len(self.windows)


def _counted(corroboration: dict) -> tuple:
    """What a new alert version is sent for: the origins of listed camps and the rules met. Unlisted sites
    (camp ``other``) prove little, so ten reprints on unknown sites send no ten versions; the next version
    names them."""
    return ({camp: names for camp, names in corroboration["by_camp"].items() if camp != UNCOUNTED_CAMP},
            corroboration["rules"])


def _says(alert: dict) -> dict:
    """What an alert says, for telling whether an update changed it (not when it was built)."""
    return {k: v for k, v in alert.items() if k != "created_at"}


def segment_key(offset: int) -> bytes:
    return b"%020d" % offset


def window_key(size: int, key: str, start: int) -> tuple[int, str, int]:
    """A window entry in memory; stored as ``size|key|start`` (:func:`encode_window`)."""
    return (size, key, start)


def encode_window(entry: tuple[int, str, int]) -> bytes:
    return f"{entry[0]}|{entry[1]}|{entry[2]}".encode()


def decode_window(raw: bytes) -> tuple[int, str, int]:
    size, rest = raw.decode().split("|", 1)
    key, start = rest.rsplit("|", 1)
    return (int(size), key, int(start))


class StoryShard:
    """Dedup, corroboration, cooldown and trend windows of the whole pipeline (pure; see the module)."""

    def __init__(self, config: Config | None = None, registry: SourceRegistry | None = None) -> None:
        self.config = c = config or Config()
        self.registry = registry or default_registry()
        self.index = DedupIndex(c.near_dup_threshold)
        self.segments: dict[int, bytes] = {}  # input offset -> its stored segment, oldest first
        self._segment_meta: dict[int, tuple[float, list[str]]] = {}  # offset -> (time, story ids it made)
        self._alerts: dict[str, bytes] = {}  # story id -> zlib JSON [event time, its alerts as built]
        self._copies: dict[str, list[dict]] = {}  # story id -> its attributed copies (MAX_COPIES)
        self._revisions: dict[str, list] = {}  # updated story id -> [revision, position, alert ids re-sent]
        self._raw_high: dict[int, int] = {}  # news.raw partition -> highest offset decided
        self.last_alert: dict[str, dict] = {}  # cooldown key -> last alert sent
        self.windows: dict[tuple, dict] = {}  # window entry -> {"n", "o", "ids", "ev", "f", "w"}
        self._latest: dict[tuple[int, str], int] = {}  # (size, key) -> newest window start seen
        self._baselines: dict[str, dict[tuple[int, int], tuple[float, float]]] = {}  # key -> (size, start) -> ...
        self.changes = Changes()
        self._min_rank = severity_rank(c.alert_min_severity)
        self._base = c.window_sizes[0]
        self._last_sweep = float("-inf")

    # ------------------------------------------------------------------ one input record
    def decide(self, entries: list[Entry], offset: int, now: float) -> Outcome:
        """Decide every entry of the input record at ``offset``, in order (``now``: epoch seconds)."""
        out = Outcome()
        if offset in self.segments:  # decided before: a replay after a crash
            self._replay(entries, offset, now, out)
            self._forget(now, out)
            return out
        new: dict[str, str] = {}  # story id -> its record (base64) for this record's segment
        raisable: dict[str, str] = {}  # story id -> its compressed alerts (base64)
        firsts: dict[str, dict] = {}  # story id -> its first copy
        repeats: list[list] = []  # [story id, source, copy kept or None]
        updated: dict[str, list] = {}  # story id -> its revision record (see _update)
        raw_high: dict[int, int] = {}  # news.raw partition -> highest offset in this record
        for i, entry in enumerate(entries):
            pos = position(offset, i)
            f = entry.features
            sid, reason = self.index.check(f)
            if entry.raw is not None:
                if sid is not None and self._redelivered(entry, sid, reason):
                    out.redelivered += 1
                    continue
                part, at = entry.raw
                raw_high[part] = max(at, raw_high.get(part, -1))
            if reason == "id" and self._changed(sid, f):
                updated[sid] = self._update(sid, entry, pos, out)
                continue
            if sid is not None:
                out.duplicates.append(reason)
                repeats.append([sid, f.source, self._repeat(sid, f.source, entry.copy, pos, out)])
                continue
            story = Story.first(f, now, pos)
            self.index.add(story, f.bands)
            new[f.item_id] = base64.b64encode(story.raw).decode("ascii")
            self._copies[f.item_id] = [entry.copy]
            firsts[f.item_id] = entry.copy
            if entry.alerts:
                blob = self._alerts[f.item_id] = zlib.compress(
                    orjson.dumps([trend.event_time(entry.tagged), entry.alerts]), 1)
                raisable[f.item_id] = base64.b64encode(blob).decode("ascii")
            self._first(entry, pos, now, out)
        if new or repeats or updated:
            for part, at in raw_high.items():
                self._raw_high[part] = max(at, self._raw_high.get(part, -1))
            self._store_segment(offset, now, new, raisable, firsts, repeats, updated, raw_high)
        self._forget(now, out)
        return out

    def _first(self, entry: Entry, pos: int, now: float, out: Outcome) -> None:
        """Send a first copy (revision 1), offer its alerts to the cooldown and count its trend keys."""
        entry.tagged["revision"] = 1
        out.tagged.append((entry.tagged, entry.received))
        at = trend.event_time(entry.tagged)
        copies = self._copies.get(entry.features.item_id, [entry.copy])
        c = self.registry.corroborate(copies)
        for alert in entry.alerts:
            alert = corroborated(alert, c, copies, 1)
            alert["revision"] = 1
            if severity_rank(alert["severity"]) >= self._min_rank:
                self._offer(alert, at, entry.received, pos, out)
        if entry.trend:
            for key in entry.trend["keys"]:
                self._count(key, entry.trend, pos, now, out)

    def _replay(self, entries: list[Entry], offset: int, now: float, out: Outcome) -> None:
        """Send again what the record at ``offset`` sent: each first copy and update, the same revision and
        alerts under the same ids (the cooldown and windows know their positions); copies only count as
        redelivered."""
        for i, entry in enumerate(entries):
            pos = position(offset, i)
            out.redelivered += 1
            sid = entry.features.item_id
            raw = self.index.records.get(sid)
            if raw is None:  # a copy of another story, or forgotten since
                continue
            if Story.position_of(raw) == pos:
                self._first(entry, pos, now, out)
            elif (rev := self._revisions.get(sid)) and rev[1] == pos:
                self._send_revision(sid, entry, rev[0], set(rev[2]), pos, out)

    def _redelivered(self, entry: Entry, sid: str, reason: str) -> bool:
        """Whether ``entry``, found to repeat story ``sid``, was read from news.raw before: the process stage
        sends it again after a crash (its input was not committed), at a news.raw offset the shard has
        decided. Unless it carries a text the story never had: then it is an update (a recreated news.raw
        topic reuses offsets)."""
        part, at = entry.raw
        if at > self._raw_high.get(part, -1):
            return False
        f = entry.features
        return reason != "id" or not self._changed(sid, f) or self.index.had_content(sid, f.content)

    # ------------------------------------------------------------------ updates (corrections)
    def _changed(self, sid: str, f: Features) -> bool:
        """Whether the item with a known id ``sid`` has another text than the story's latest revision
        (content digests, after case and whitespace folding; unknown when either has none)."""
        latest = Story.loads(sid, self.index.records[sid]).content
        return bool(f.content and latest) and f.content[:16] != latest[:16]

    def _update(self, sid: str, entry: Entry, pos: int, out: Outcome) -> list:
        """Make ``entry`` the next revision of story ``sid``: send it, and those of its alerts that say
        something other than the previous revision's (or are new). The story is re-keyed with the update's
        features (other outlets' copies of the corrected text find it). Returns the update's record for the
        segment: ``[revision, position, alert ids re-sent, compressed alerts (base64, "" for none),
        features (wire)]``."""
        rev = self._revisions.get(sid)
        revision = (rev[0] if rev else 1) + 1
        blob = self._alerts.get(sid)
        before = {a["alert_id"]: a for a in (orjson.loads(zlib.decompress(blob))[1] if blob else [])}
        copies = self._copies.get(sid) or [entry.copy]
        c = self.registry.corroborate(copies)
        changed = set()
        for alert in entry.alerts:
            prior = before.get(alert["alert_id"])
            if prior is not None and _says(prior) == _says(alert):
                continue
            was = prior is not None and severity_rank(corroborated(prior, c, copies, 1)["severity"]) >= self._min_rank
            if was or severity_rank(corroborated(alert, c, copies, 1)["severity"]) >= self._min_rank:
                changed.add(alert["alert_id"])
        self._send_revision(sid, entry, revision, changed, pos, out)
        blob = None
        if entry.alerts:
            blob = self._alerts[sid] = zlib.compress(orjson.dumps([trend.event_time(entry.tagged), entry.alerts]), 1)
        else:
            self._alerts.pop(sid, None)
        self.index.replace(Story.loads(sid, self.index.records[sid]).revised(entry.features), entry.features.bands)
        self._revisions[sid] = [revision, pos, sorted(changed)]
        return [*self._revisions[sid], base64.b64encode(blob).decode("ascii") if blob else "", entry.features.wire()]

    def _send_revision(self, sid: str, entry: Entry, revision: int, alert_ids: set[str], pos: int,
                       out: Outcome) -> None:
        """Send ``entry`` as revision ``revision`` of story ``sid`` and its alerts of ``alert_ids`` (new
        versions of what was sent: the cooldown does not hold back the key's last alert)."""
        entry.tagged["revision"] = revision
        out.updates.append((entry.tagged, entry.received))
        copies = self._copies.get(sid) or [entry.copy]
        c = self.registry.corroborate(copies)
        total = Story.loads(sid, self.index.records[sid]).copies
        at = trend.event_time(entry.tagged)
        for alert in entry.alerts:
            if alert["alert_id"] in alert_ids:
                alert = corroborated(alert, c, copies, total)
                alert["revision"] = revision
                self._offer(alert, at, entry.received, pos, out, update=True)

    def _repeat(self, sid: str, source: str, copy: dict, pos: int, out: Outcome) -> dict | None:
        """Count a copy of story ``sid``; keep its attribution when its (outlet, origin) is new, and re-send
        the story's alerts when that grows its listed origins or camps (:func:`_counted`). Returns the copy
        when kept."""
        story = Story.loads(sid, self.index.records[sid])
        story.repeat(source)
        self.index.update(sid, story.dumps())
        copies = self._copies.setdefault(sid, [])
        if len(copies) >= MAX_COPIES or any(c["outlet"] == copy["outlet"] and c["origin"] == copy["origin"]
                                            for c in copies):
            return None
        before = self.registry.corroborate(copies) if copies else None
        copies.append(copy)
        after = self.registry.corroborate(copies)
        if before is None or _counted(before) == _counted(after):
            return copy
        out.corroborations += 1
        blob = self._alerts.get(sid)
        at, alerts = orjson.loads(zlib.decompress(blob)) if blob else (0.0, [])
        revision = self._revisions[sid][0] if sid in self._revisions else 1
        for alert in alerts:
            alert = corroborated(alert, after, copies, story.copies)
            alert["revision"] = revision
            if severity_rank(alert["severity"]) >= self._min_rank:
                self._offer(alert, at, None, pos, out, update=True)
        return copy

    # ------------------------------------------------------------------ cooldown
    def _offer(self, alert: dict, at: float, received: float | None, pos: int, out: Outcome,
               update: bool = False) -> None:
        """Send ``alert`` unless the cooldown holds it back; an ``update`` (a new version of the key's last
        sent alert, e.g. its corroboration grew) always goes out."""
        key = cooldown.cooldown_key(alert)
        last = self.last_alert.get(key)
        send, reason, state = cooldown.decide(last, alert["alert_id"], alert["severity"], at,
                                              self.config.alert_cooldown, pos)
        if not send and update and last is not None and last["id"] == alert["alert_id"]:
            send = True
        if not send:
            out.suppressed.append((alert["type"], reason))
            if reason == "cooldown":
                state = cooldown.hold(state, alert, pos)
        elif state is not last:  # sent: it carries what the key held back (kept for a replay's re-send)
            held = (last or {}).get("held")
            alert = cooldown.release(held, alert)
            state = {**state, "released": held} if held else state
        elif reason == "replay":
            alert = cooldown.release(state.get("released"), alert)
        if state is not last:
            self.last_alert[key] = state
            self.changes.cooldown[key.encode()] = orjson.dumps(state)
        if send:
            out.alerts.append((alert, received))

    # ------------------------------------------------------------------ trend windows
    def _put(self, entry: tuple, d: dict) -> None:
        self.windows[entry] = d
        self.changes.windows[entry] = None  # serialised at flush time (the dict may change again)

    def _parts(self, size: int, key: str, start: int) -> list[dict]:
        """The stored base windows of a window (one for the base size itself)."""
        base = self._base
        found = (self.windows.get(window_key(base, key, s)) for s in range(start, start + size, base))
        return [d for d in found if d]

    def _window_count(self, size: int, key: str, start: int) -> int:
        return sum(d["n"] for d in self._parts(size, key, start))

    def _baseline(self, size: int, key: str, start: int) -> tuple[float, float]:
        """The baseline of a window: computed once per window, kept until a count lands in an earlier window
        of its key (a late item), which may change it."""
        cached = self._baselines.setdefault(key, {})
        found = cached.get((size, start))
        if found is None:
            lookback = self.config.trend_lookback
            found = cached[(size, start)] = trend.baseline(
                [self._window_count(size, key, start - i * size) for i in range(lookback, 0, -1)])
        return found

    def _count(self, key: str, rec: dict, pos: int, now: float, out: Outcome) -> None:
        """Count ``key`` once in its base window (unless this position was counted already), then check every
        window size that holds it for a surge."""
        c, base, at = self.config, self._base, rec["t"]
        start = trend.window_start(at, base)
        if start < self._latest.get((base, key), start):  # a late item: later windows' baselines change
            self._baselines.pop(key, None)
        entry = window_key(base, key, start)
        d = self.windows.get(entry) or {"n": 0, "o": -1, "ids": [], "ev": [], "f": False}
        if d["o"] >= pos:  # counted before a restart
            return
        d["n"] += 1
        d["o"] = pos
        d["w"] = now
        if len(d["ids"]) < MAX_IDS:
            d["ids"].append(rec["id"])
        if rec["ev"] and rec["ev"] not in d["ev"] and len(d["ev"]) < MAX_EVIDENCE:
            d["ev"].append(rec["ev"])
        self._put(entry, d)
        kind, _, category = key.partition("/")
        counted = []
        for size in c.window_sizes:
            s = trend.window_start(at, size)
            parts = [d] if size == base else self._parts(size, key, s)
            n = sum(p["n"] for p in parts)
            ids = [i for p in parts for i in p["ids"]][:MAX_IDS]
            counted.append((size, s, n, ids))
            if s >= self._latest.get((size, key), s):
                self._latest[(size, key)] = s
                out.window_counts[(size, key)] = n
            if kind == "actor" or category == trend.KIND_TOTAL:
                continue
            flag = window_key(size, key, s)  # larger windows: a flag entry marks a sent surge
            if d["f"] if size == base else flag in self.windows:
                continue
            mean, std = self._baseline(size, key, s)
            if n >= trend.threshold(mean, std, c.trend_min_count, c.trend_z):
                evidence = list(dict.fromkeys(e for p in parts for e in p["ev"]))[:MAX_EVIDENCE]
                alert = trend.surge_alert(key, size, s, n, mean, std, item_ids=ids, evidence=evidence,
                                          actors=rec["actors"], lexicon_version=rec["lv"], created_at=now_iso())
                self._offer(alert, at, None, pos, out)
                if size == base:
                    d["f"] = True
                else:
                    self._put(flag, {"n": 0, "o": -1, "ids": [], "ev": [], "f": True, "w": now})
        if category == trend.KIND_TOTAL:
            for size, s, n, ids in counted:
                self._kind_totals(size, s, kind, n, ids, rec, pos, now, out)

    def _kind_totals(self, size: int, start: int, kind: str, n: int, ids: list[str], rec: dict, pos: int,
                     now: float, out: Outcome) -> None:
        c, kinds = self.config, ("escalation", "negotiation")
        counts = {k: (n if k == kind else self._window_count(size, f"{k}/*", start)) for k in kinds}
        stats = {k: self._baseline(size, f"{k}/*", start) for k in kinds}
        if size == self._base and start >= self._latest.get((size, f"{kind}/*"), start):
            out.index[kind] = trend.index(n, stats[kind][0])
        surging = all(counts[k] >= trend.threshold(*stats[k], c.trend_min_count, c.trend_z) for k in kinds)
        flag = window_key(size, "divergence", start)
        if surging and flag not in self.windows:
            alert = trend.divergence_alert(size, start, counts, {k: stats[k][0] for k in kinds}, item_ids=ids,
                                           lexicon_version=rec["lv"], created_at=now_iso())
            self._offer(alert, rec["t"], None, pos, out)
            self._put(flag, {"n": 0, "o": -1, "ids": [], "ev": [], "f": True, "w": now})

    # ------------------------------------------------------------------ stories: segments, expiry
    def _store_segment(self, offset: int, now: float, new: dict, raisable: dict, firsts: dict,
                       repeats: list, updated: dict, raw_high: dict) -> None:
        segment = {"t": now, "new": new, "alerts": raisable, "copies": firsts, "rep": repeats}
        if updated:
            segment["upd"] = updated
        if raw_high:
            segment["raw"] = {str(part): at for part, at in raw_high.items()}
        value = zlib.compress(orjson.dumps(segment), 1)
        self.segments[offset] = value
        self._segment_meta[offset] = (now, list(new))
        self.changes.stories[segment_key(offset)] = value

    def _forget(self, now: float, out: Outcome) -> None:
        """Forget the segments past the horizon, and the oldest ones while the stories exceed the cap; the
        trend windows past the longest lookback (every 30 s)."""
        c = self.config
        while self._segment_meta:
            offset = next(iter(self._segment_meta))
            at, ids = self._segment_meta[offset]
            expired = now - at > c.dedup_horizon
            if not expired and len(self.index) <= c.max_stories:
                break
            for sid in ids:
                raw = self.index.records.get(sid)
                if raw is not None and Story.position_of(raw) >> POSITION_BITS == offset:
                    self.index.remove(Story.loads(sid, raw))
                    self._alerts.pop(sid, None)
                    self._copies.pop(sid, None)
                    self._revisions.pop(sid, None)
                    out.evicted += 0 if expired else 1
            del self._segment_meta[offset]
            del self.segments[offset]
            self.changes.stories[segment_key(offset)] = None
        if now - self._last_sweep > 30.0:
            self._last_sweep = now
            keep = max(c.window_sizes) * (c.trend_lookback + 2)
            for entry, d in list(self.windows.items()):
                if now - d.get("w", now) > keep:
                    del self.windows[entry]
                    self.changes.windows[entry] = None

    # ------------------------------------------------------------------ persistence
    def flush(self) -> Changes:
        """The changes to write (serialised), once per batch; the shard starts collecting afresh."""
        changes = self.changes.take()
        changes.windows = {encode_window(entry): orjson.dumps(d) if (d := self.windows.get(entry)) is not None
                           else None for entry in changes.windows}
        return changes

    def restore(self, stories: Iterable[tuple[bytes, bytes]], cooldowns: Iterable[tuple[bytes, bytes]],
                windows: Iterable[tuple[bytes, bytes]]) -> None:
        """Rebuild the whole state from stored records (any order), as :meth:`flush` wrote them."""
        self.__init__(self.config)
        for key, value in sorted(stories):
            offset = int(key)
            segment = orjson.loads(zlib.decompress(value))
            for sid, raw in segment["new"].items():
                self.index.add(Story.loads(sid, base64.b64decode(raw)))
            for sid, blob in segment["alerts"].items():
                if sid in self.index.records:
                    self._alerts[sid] = base64.b64decode(blob)
            for sid, copy in segment.get("copies", {}).items():
                self._copies[sid] = [copy]
            for sid, source, *kept in segment["rep"]:
                raw = self.index.records.get(sid)
                if raw is not None:
                    story = Story.loads(sid, raw)
                    story.repeat(source)
                    self.index.update(sid, story.dumps())
                    if kept and kept[0] is not None:
                        self._copies.setdefault(sid, []).append(kept[0])
            for sid, (revision, pos, sent, blob, features) in segment.get("upd", {}).items():
                if (raw := self.index.records.get(sid)) is not None:
                    self.index.replace(Story.loads(sid, raw).revised(Features.from_wire(features)))
                    self._revisions[sid] = [revision, pos, sent]
                    if blob:
                        self._alerts[sid] = base64.b64decode(blob)
                    else:
                        self._alerts.pop(sid, None)
            for part, at in segment.get("raw", {}).items():
                self._raw_high[int(part)] = max(at, self._raw_high.get(int(part), -1))
            self.segments[offset] = value
            self._segment_meta[offset] = (segment["t"], list(segment["new"]))
        self.last_alert = {key.decode(): orjson.loads(value) for key, value in cooldowns}
        self.windows = {decode_window(key): orjson.loads(value) for key, value in windows}
