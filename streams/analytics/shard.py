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
  what it holds back is counted in the next alert of the key, or in a digest alert of its own when the
  key's cooldown is over before one comes (:meth:`StoryShard.digest`, called by the stage's timer) or
  when its held list is full),
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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property

import orjson

from streams.alerting import corroborated, severity_rank
from streams.analytics import cooldown, trend
from streams.analytics.dedup import DedupIndex, Features, Story
from streams.records import now_iso, stored_json
from streams.sources import SourceRegistry, default_registry
from streams.sources.corroboration import UNCOUNTED_CAMP

POSITION_BITS = 12
MAX_ENTRIES = 1 << POSITION_BITS
"""Most entries in one input record (their index is the low bits of a position)."""
MAX_RECORD_BYTES = 900_000
"""A news.processed record holds entries up to this size (under the default 1 MB broker limit); a
larger item travels alone."""
MAX_IDS = 5
MAX_EVIDENCE = 3
MAX_COPIES = 32
"""Attributed copies kept per story (distinct outlet and origin; more only count)."""


def position(offset: int, index: int) -> int:
    """The position of entry ``index`` of the input record at ``offset``."""
    return (offset << POSITION_BITS) | index


class Tagged(Mapping):
    """A tagged item as the story shard handles it: the serialised ``news.tagged`` record, sent as it is,
    and the few facts the shard and the metrics read (extracted once, by the process stage). The whole
    record is decoded only when read as a mapping (the negotiation tracker, an update).

    Decoding every item and serialising it again cost the shard about a third of its CPU per item
    (docs/architecture.md, "Scale limits")."""

    __slots__ = ("raw", "item_id", "event_time", "labels", "counted", "actors", "talks", "talks_text", "_doc")

    def __init__(self, raw: bytes, item_id: str, event_time: float, labels: list[str],
                 counted: list[list[str]], actors: list[str], talks: bool, doc: dict | None = None,
                 talks_text: list | None = None) -> None:
        self.raw = raw
        self.item_id = item_id
        self.event_time = event_time
        self.labels = labels
        self.counted = counted
        """[kind, category] of each signal that counts (hypothetical, historical, negated ones do not)."""
        self.actors = actors
        self.talks = talks
        """The item has a negotiation signal or a reported escalation: the negotiation tracker reads it."""
        self.talks_text = talks_text
        """What the negotiation tracker reads of its text (``streams.talks.tracker.TalksText.wire``), read by
        the process stage for an item with talks signals (None: not read, the tracker reads it if it needs to)."""
        self._doc = doc

    @classmethod
    def of(cls, tagged: dict, talks_text: list | None = None) -> Tagged:
        signals = tagged.get("signals") or ()
        return cls(orjson.dumps(tagged), tagged["id"], trend.event_time(tagged), list(tagged.get("labels", ())),
                   [[s["kind"], s["category"]] for s in signals if s.get("counts", True)],
                   list(tagged.get("actors", ())) if signals else [],
                   any(s["kind"] == "negotiation" or s.get("stance") == "reported" for s in signals), tagged,
                   talks_text)

    def facts(self) -> list:
        """The facts, JSON-ready (:meth:`from_wire` reads them back with the raw record)."""
        return [self.item_id, self.event_time, self.labels, self.counted, self.actors, self.talks, self.talks_text]

    @classmethod
    def from_wire(cls, raw: bytes, facts: list) -> Tagged:
        """From :meth:`facts` (six in records written before the tracker's reading was among them)."""
        item_id, event_time, labels, counted, actors, talks, *text = facts
        return cls(raw, item_id, event_time, labels, counted, actors, talks, None, text[0] if text else None)

    @property
    def doc(self) -> dict:
        if self._doc is None:
            self._doc = orjson.loads(self.raw)
        return self._doc

    def __getitem__(self, key: str):
        return self.doc[key]

    def __iter__(self):
        return iter(self.doc)

    def __len__(self) -> int:
        return len(self.doc)


class BuiltAlert(Mapping):
    """One of an item's alerts as the process stage built it, as the story shard handles it: the fields the
    cooldown reads (:data:`ALERT_FACTS`, in the record's header), and the whole alert decoded only when read
    for more (sent, or held with what its key held back), from the entry's packed alerts.

    Most alerts are held back by the cooldown, below the minimum severity, or those of a duplicate: decoding
    every alert of every item was two thirds of the header's decoding (docs/architecture.md, "What crosses the
    internal hop")."""

    __slots__ = ("facts", "_packed", "_index", "_doc")

    def __init__(self, facts: dict, packed: bytes, index: int) -> None:
        self.facts = facts
        self._packed = packed
        self._index = index
        self._doc: dict | None = None

    @staticmethod
    def facts_of(alert: Mapping) -> list:
        """What the header carries of ``alert``, JSON-ready, in :data:`ALERT_FACTS` order."""
        return [alert.get(name, default) for name, default in ALERT_FACTS]

    @property
    def doc(self) -> dict:
        if self._doc is None:
            self._doc = unpack_alerts(self._packed)[1][self._index]
        return self._doc

    def __getitem__(self, key: str):
        facts = self.facts
        return facts[key] if key in facts else self.doc[key]

    def __iter__(self):
        return iter(self.doc)

    def __len__(self) -> int:
        return len(self.doc)


ALERT_FACTS = (("alert_id", ""), ("type", ""), ("severity", "low"), ("summary", ""), ("item_ids", []),
               ("lexicon_version", ""), ("categories", []), ("actors", []))
"""The fields of a per-item alert that the story shard reads before it sends or holds it (the cooldown key,
severity, and what a held list keeps), with their defaults."""
_FACT_NAMES = tuple(name for name, _ in ALERT_FACTS)


@dataclass
class Entry:
    """One accepted item as the process stage hands it on: the tagged record, all its per-item alerts
    (any severity: corroboration may raise a low one; the process stage corroborated them by this one
    copy, as revision 1), its dedup features, its trend record (None without signals), the epoch second it
    was received, its copy record and where it was read (news.raw partition and offset; None: unknown, a
    record of the previous version)."""

    tagged: Tagged
    alerts: list[Mapping]
    features: Features
    trend: dict | None
    received: float
    copy_json: bytes
    """Its copy record (:meth:`streams.sources.Attribution.copy`: outlet, origin, camp) as JSON: the shard
    keeps a new story's as it came (decoding and encoding it again was ~2% of the shard's time) and decodes
    it (:attr:`copy`) for a repeat or an update only."""
    raw: tuple[int, int] | None = None
    packed_alerts: bytes = b""
    """:func:`pack_alerts` of the alerts (b"" without alerts), as the shard keeps a new story's: packed by
    the parallel process stage, not by the serial shard (packed here when not given)."""

    def __post_init__(self) -> None:
        if self.alerts and not self.packed_alerts:
            self.packed_alerts = pack_alerts(self.tagged.event_time, self.alerts)

    @classmethod
    def of(cls, tagged: Tagged, alerts: list[Mapping], features: Features, trend: dict | None, received: float,
           copy: dict) -> Entry:
        """An entry as the process stage makes it, its copy record at hand."""
        entry = cls(tagged, alerts, features, trend, received, orjson.dumps(copy))
        entry.__dict__["copy"] = copy  # the cached property
        return entry

    @cached_property
    def copy(self) -> dict:
        return orjson.loads(self.copy_json)

    def wire(self) -> tuple[bytes, bytes]:
        """The entry's part of a news.processed record: its JSON header, and its raw tagged record followed
        by its packed alerts, its features' bytes (:meth:`Features.parts`) and its copy record's JSON."""
        features, features_blob = self.features.parts()
        head = {"t": self.tagged.facts(), "n": len(self.tagged.raw), "a": [BuiltAlert.facts_of(a) for a in self.alerts],
                "f": features, "trend": self.trend, "r": self.received, "cn": len(self.copy_json)}
        if self.raw is not None:
            head["o"] = list(self.raw)
        if self.packed_alerts:
            head["za"] = len(self.packed_alerts)
        return orjson.dumps(head), self.tagged.raw + self.packed_alerts + features_blob + self.copy_json

    @classmethod
    def from_wire(cls, d: dict, tagged_raw: bytes | None = None, packed_alerts: bytes = b"",
                  features_blob: bytes | None = None, copy_json: bytes | None = None) -> Entry:
        """An entry from its header ``d``, raw tagged record (a version-1 header holds the tagged dict),
        packed alerts (b"": packed when the entry is made, for a record that does not carry them), its
        features' bytes and its copy record's JSON (None, None: a record of format 1 or 2, whose features
        and copy record are in the header). Records written before the header carried the alerts' facts
        (``a``) carry the whole alerts (``alerts``)."""
        tagged = Tagged.of(d["tagged"]) if tagged_raw is None else Tagged.from_wire(tagged_raw, d["t"])
        read_at = d.get("o")
        if "a" in d:
            if d["a"] and not packed_alerts:
                raise ValueError("news.processed entry has alerts but not their packed bytes (za)")
            alerts = [BuiltAlert(dict(zip(_FACT_NAMES, facts, strict=True)), packed_alerts, i)
                      for i, facts in enumerate(d["a"])]
        else:
            alerts = d["alerts"]
        features = Features.from_wire(d["f"]) if features_blob is None else Features.from_parts(d["f"], features_blob)
        return cls(tagged, alerts, features, d["trend"], d["r"], orjson.dumps(d["c"]) if copy_json is None else copy_json,
                   (read_at[0], read_at[1]) if read_at else None, packed_alerts)


def pack_alerts(event_time: float, alerts: list[dict]) -> bytes:
    """An item's alerts as the shard keeps them for its story (compressed JSON ``[event time, alerts]``;
    b"" without alerts)."""
    return zlib.compress(orjson.dumps([event_time, alerts]), 1) if alerts else b""


def unpack_alerts(packed: bytes | None) -> tuple[float, list[dict]]:
    """Inverse of :func:`pack_alerts` (``(0.0, [])`` for b"" or None: a story without alerts)."""
    return tuple(orjson.loads(zlib.decompress(packed))) if packed else (0.0, [])


def read_segment(value: bytes) -> tuple[dict, dict[str, bytes], dict[str, bytes]]:
    """A stored story segment (:meth:`StoryShard.restore`): its JSON, the story records it made and their
    packed alerts (story id -> bytes, each).

    Written as a zlib stream of the JSON (``"v": 3``: ``new`` and ``alerts`` map each story id to the length
    of its part), then the story records and the packed alerts (zlib already) back to back, as they are. The
    records are mostly the signature, which does not compress: compressing them was ~85% of the segment's
    compression time, ~5 µs per new story in the serial shard, for a third fewer bytes (docs/architecture.md,
    "Scale limits"). Read from changelogs written before: ``"v": 2``, the records inside the zlib stream after
    a newline; the first format, the JSON alone with records and alerts in base64."""
    stream = zlib.decompressobj()
    head, _, records = stream.decompress(value).partition(b"\n")
    if not stream.eof:
        raise ValueError("story segment cut short")
    segment = orjson.loads(head)
    version = segment.get("v")
    if version == 3:
        records, at = stream.unused_data, sum(segment["new"].values())
        return segment, _cut(segment["new"], records[:at]), _cut(segment["alerts"], records[at:])
    if version != 2:
        return (segment, {sid: base64.b64decode(raw) for sid, raw in segment["new"].items()},
                {sid: base64.b64decode(blob) for sid, blob in segment["alerts"].items()})
    return segment, _cut(segment["new"], records), _cut(segment["alerts"], stream.unused_data)


def _cut(lengths: dict[str, int], blob: bytes) -> dict[str, bytes]:
    """``blob`` cut into the parts of ``lengths`` (id -> length, in order)."""
    parts, at = {}, 0
    for sid, n in lengths.items():
        parts[sid] = blob[at:at + n]
        at += n
    if at != len(blob):
        raise ValueError("story segment longer or shorter than its header says")
    return parts


def batch_records(parts: list[tuple[bytes, bytes]], max_bytes: int = MAX_RECORD_BYTES) -> list[bytes]:
    """Entries (:meth:`Entry.wire`) joined into news.processed records of at most ``max_bytes`` (an entry
    larger than that alone) and :data:`MAX_ENTRIES` entries: a JSON header line
    ``{"v": 3, "entries": [...]}``, a newline, then each entry's raw tagged record, packed alerts,
    features' bytes and copy record, back to back (schemas/processed-batch.v3.json)."""
    records: list[bytes] = []
    heads: list[bytes] = []
    raws: list[bytes] = []
    size = 0

    def close() -> None:
        records.append(b'{"v":3,"entries":[' + b",".join(heads) + b"]}\n" + b"".join(raws))

    for head, raw in parts:
        if heads and (size + len(head) + len(raw) > max_bytes or len(heads) >= MAX_ENTRIES):
            close()
            heads, raws, size = [], [], 0
        heads.append(head)
        raws.append(raw)
        size += len(head) + len(raw) + 1
    if heads:
        close()
    return records


def read_batch(value: bytes) -> list[Entry]:
    """The entries of a news.processed record (either version; raises ValueError, KeyError or TypeError
    on a record that is not one)."""
    head, _, blob = value.partition(b"\n")
    doc = orjson.loads(head)
    version = doc.get("v")
    if version == 1:
        return [Entry.from_wire(d) for d in doc["entries"]]
    entries, at = [], 0
    for d in doc["entries"]:
        # the entry's bytes: its tagged record, packed alerts and (format 3) features' bytes and copy record
        sizes = (d["n"], d.get("za", 0), sum(d["f"][5:8]), d["cn"]) if version == 3 else (d["n"], d.get("za", 0))
        if at + sum(sizes) > len(blob):
            raise ValueError("news.processed record shorter than its header says")
        cuts = []
        for size in sizes:
            cuts.append(blob[at:at + size])
            at += size
        entries.append(Entry.from_wire(d, *cuts))
    return entries


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

    tagged: list[tuple[Tagged, float]] = field(default_factory=list)
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
    """Keys changed since the last flush, per store (value None: delete): written once per batch. Until the
    flush, cooldown and window entries are held by their in-memory key alone (serialised by
    :meth:`StoryShard.flush`, once however often the batch changed them)."""

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


def _ids(parts: list[dict]) -> list[str]:
    """The first item ids counted in a window's stored parts (what its alert lists)."""
    return [i for p in parts for i in p["ids"]][:MAX_IDS]


_KIND_TOTALS = (("escalation", "escalation/*"), ("negotiation", "negotiation/*"))
"""The kinds whose totals surging together make a divergence, and their trend keys."""


def segment_key(offset: int) -> bytes:
    return b"%020d" % offset


def encode_window(entry: tuple[int, str, int]) -> bytes:
    """A window entry (``(size, key, start)`` in memory) as stored: ``size|key|start``."""
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
        self._copies: dict[str, bytes] = {}  # story id -> its attributed copies (MAX_COPIES) as JSON: a third of
        # the dicts' size, and read only when a copy of the story comes
        self._revisions: dict[str, list] = {}  # updated story id -> [revision, position, alert ids re-sent]
        self._raw_high: dict[int, int] = {}  # news.raw partition -> highest offset decided
        self.last_alert: dict[str, dict] = {}  # cooldown key -> last alert sent
        self.windows: dict[tuple, dict] = {}  # (size, key, start) -> {"n", "o", "ids", "ev", "f", "w"}
        self._latest: dict[tuple[int, str], int] = {}  # (size, key) -> newest window start seen
        self._baselines: dict[str, dict[tuple[int, int], tuple[float, float, float]]] = {}  # key -> (size, start) -> ...
        self._baseline_high: dict[str, int] = {}  # key -> the latest window start it has a baseline cached for
        self.changes = Changes()
        self._min_rank = severity_rank(c.alert_min_severity)
        # whether a corroboration rule counts unlisted sites (the registry's own rules do not)
        self._unlisted_count = any(UNCOUNTED_CAMP in (rule.get("camps") or ())
                                   for rule in self.registry.rules.rules)
        self._base = c.window_sizes[0]
        self._last_sweep = float("-inf")
        self.clock = trend.EventClock()  # event time of the items decided: when a cooldown is over

    # ------------------------------------------------------------------ one input record
    def decide(self, entries: list[Entry], offset: int, now: float) -> Outcome:
        """Decide every entry of the input record at ``offset``, in order (``now``: epoch seconds)."""
        out = Outcome()
        if offset in self.segments:  # decided before: a replay after a crash
            self._replay(entries, offset, now, out)
            self._forget(now, out)
            return out
        new: dict[str, bytes] = {}  # story id -> its record, for this record's segment
        raisable: dict[str, bytes] = {}  # story id -> its packed alerts
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
            at = entry.tagged.event_time
            self.clock.see(at, now)
            story = Story.first(f, now, pos)
            self.index.add(story, f.bands)
            new[f.item_id] = story.raw
            self._copies[f.item_id] = b"[" + entry.copy_json + b"]"  # as stored_json([copy]) writes it
            firsts[f.item_id] = orjson.Fragment(entry.copy_json)
            if entry.packed_alerts:
                self._alerts[f.item_id] = entry.packed_alerts
                raisable[f.item_id] = entry.packed_alerts
            self._first(entry, pos, now, out)
        if new or repeats or updated:
            for part, at in raw_high.items():
                self._raw_high[part] = max(at, self._raw_high.get(part, -1))
            self._store_segment(offset, now, new, raisable, firsts, repeats, updated, raw_high)
        self._forget(now, out)
        return out

    def _first(self, entry: Entry, pos: int, now: float, out: Outcome,
               copies: list[dict] | None = None) -> None:
        """Send a first copy (revision 1), offer its alerts to the cooldown and count its trend keys
        (``copies``: the story's kept copies, on a replay)."""
        out.tagged.append((entry.tagged, entry.received))
        alerts = entry.alerts  # corroborated by their one copy, revision 1 (the process stage)
        if copies and len(copies) > 1:  # a replay after more copies came
            c = self.registry.corroborate(copies)
            alerts = [corroborated(alert, c, copies, 1) for alert in alerts]
        for alert in alerts:
            if severity_rank(alert["severity"]) >= self._min_rank:
                self._offer(alert, entry.tagged.event_time, entry.received, pos, out)
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
                self._first(entry, pos, now, out, self.copies(sid))
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
        before = {a["alert_id"]: a for a in unpack_alerts(blob)[1]}
        copies = self.copies(sid) or [entry.copy]
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
        blob = entry.packed_alerts
        if blob:
            self._alerts[sid] = blob
        else:
            self._alerts.pop(sid, None)
        self.index.replace(Story.loads(sid, self.index.records[sid]).revised(entry.features), entry.features.bands)
        self._revisions[sid] = [revision, pos, sorted(changed)]
        return [*self._revisions[sid], base64.b64encode(blob).decode("ascii") if blob else "", entry.features.wire()]

    def _send_revision(self, sid: str, entry: Entry, revision: int, alert_ids: set[str], pos: int,
                       out: Outcome) -> None:
        """Send ``entry`` as revision ``revision`` of story ``sid`` and its alerts of ``alert_ids`` (new
        versions of what was sent: the cooldown does not hold back the key's last alert)."""
        out.updates.append((dict(entry.tagged, revision=revision), entry.received))
        copies = self.copies(sid) or [entry.copy]
        c = self.registry.corroborate(copies)
        total = Story.loads(sid, self.index.records[sid]).copies
        at = entry.tagged.event_time
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
        copies = self.copies(sid)
        if len(copies) >= MAX_COPIES or any(c["outlet"] == copy["outlet"] and c["origin"] == copy["origin"]
                                            for c in copies):
            return None
        may_grow = bool(copies) and (copy["camp"] != UNCOUNTED_CAMP or self._unlisted_count)
        before = self.registry.corroborate(copies) if may_grow else None
        copies.append(copy)
        self._copies[sid] = stored_json(copies)
        if before is None:  # the first copy, or an unlisted site: nothing _counted compares can grow
            return copy
        after = self.registry.corroborate(copies)
        if _counted(before) == _counted(after):
            return copy
        out.corroborations += 1
        blob = self._alerts.get(sid)
        at, alerts = unpack_alerts(blob)
        revision = self._revisions[sid][0] if sid in self._revisions else 1
        for alert in alerts:
            alert = corroborated(alert, after, copies, story.copies)
            alert["revision"] = revision
            if severity_rank(alert["severity"]) >= self._min_rank:
                self._offer(alert, at, None, pos, out, update=True)
        return copy

    def copies(self, sid: str) -> list[dict]:
        """The attributed copies kept for story ``sid`` (its first copy first; [] for an unknown story)."""
        kept = self._copies.get(sid)
        return orjson.loads(kept) if kept else []

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
                spilled = state.get("spilled")
                if spilled and spilled["by"] == pos:  # the key's full held list goes out now (again: a replay)
                    out.alerts.append((cooldown.digest_alert(key, spilled, now_iso()), None))
        elif state is not last:  # sent: it carries what the key held back (kept for a replay's re-send)
            held = (last or {}).get("held")
            alert = cooldown.release(held, alert)
            state = {**state, "released": held} if held else state
        elif reason == "replay":
            alert = cooldown.release(state.get("released"), alert)
        if state is not last:
            self.last_alert[key] = state
            self.changes.cooldown[key] = None  # serialised at flush time (a key can change again)
        if send:  # as a dict: what is sent is the whole alert
            out.alerts.append((alert.doc if isinstance(alert, BuiltAlert) else alert, received))

    def digest(self, wall: float) -> Outcome:
        """A digest alert for each cooldown key that holds back alerts and whose cooldown is over at the
        event clock (:func:`cooldown.digest`; ``wall``: epoch seconds); their state changes are written with
        the next :meth:`flush`."""
        out = Outcome()
        now, created = self.clock.now(wall), now_iso()
        for key, state in self.last_alert.items():
            if "held" not in state:
                continue
            alert, new = cooldown.digest(key, state, now, self.config.alert_cooldown, created)
            if alert is not None:
                self.last_alert[key] = new
                self.changes.cooldown[key] = None
                out.alerts.append((alert, None))
        return out

    # ------------------------------------------------------------------ trend windows
    def _put(self, entry: tuple, d: dict) -> None:
        self.windows[entry] = d
        self.changes.windows[entry] = None  # serialised at flush time (the dict may change again)

    def _parts(self, size: int, key: str, start: int) -> list[dict]:
        """The stored base windows of a window (one for the base size itself)."""
        base, windows = self._base, self.windows
        return [d for s in range(start, start + size, base) if (d := windows.get((base, key, s)))]

    def _window_count(self, size: int, key: str, start: int) -> int:
        return sum([d["n"] for d in self._parts(size, key, start)])

    def _baseline(self, size: int, key: str, start: int) -> tuple[float, float, float]:
        """The baseline of a window (mean, standard deviation) and the count at which it surges: computed once
        per window, kept until a count of its key lands before a window cached for it (its lookback may have
        changed) or the sweep forgets windows."""
        cached = self._baselines.get(key)
        if cached is None:
            cached = self._baselines[key] = {}
            self._baseline_high[key] = start
        found = cached.get((size, start))
        if found is None:  # the lookback's base windows in one pass, oldest first, summed per window of size
            base, get, per = self._base, self.windows.get, size // self._base
            counts = [d["n"] if (d := get((base, key, s))) else 0
                      for s in range(start - self.config.trend_lookback * size, start, base)]
            if per > 1:
                counts = [sum(counts[i:i + per]) for i in range(0, len(counts), per)]
            mean, std = trend.baseline(counts)
            c = self.config
            found = cached[(size, start)] = mean, std, trend.threshold(mean, std, c.trend_min_count, c.trend_z)
            if start > self._baseline_high[key]:
                self._baseline_high[key] = start
        return found

    def _count(self, key: str, rec: dict, pos: int, now: float, out: Outcome) -> None:
        """Count ``key`` once in its base window (unless this position was counted already), then check every
        window size that holds it for a surge."""
        c, base, at = self.config, self._base, rec["t"]
        start = trend.window_start(at, base)
        if start < self._baseline_high.get(key, start):  # in the lookback of a cached baseline
            del self._baselines[key], self._baseline_high[key]
        entry = (base, key, start)
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
            n = d["n"] if size == base else sum([p["n"] for p in parts])
            counted.append((size, s, n, parts))
            if s >= self._latest.get((size, key), s):
                self._latest[(size, key)] = s
                out.window_counts[(size, key)] = n
            if kind == "actor" or category == trend.KIND_TOTAL:
                continue
            flag = (size, key, s)  # larger windows: a flag entry marks a sent surge
            if n < c.trend_min_count or (d["f"] if size == base else flag in self.windows):
                continue  # under the least count that surges: no baseline needed to tell
            mean, std, surges_at = self._baseline(size, key, s)
            if n >= surges_at:
                evidence = list(dict.fromkeys(e for p in parts for e in p["ev"]))[:MAX_EVIDENCE]
                alert = trend.surge_alert(key, size, s, n, mean, std, item_ids=_ids(parts), evidence=evidence,
                                          actors=rec["actors"], lexicon_version=rec["lv"], created_at=now_iso())
                self._offer(alert, at, None, pos, out)
                if size == base:
                    d["f"] = True
                else:
                    self._put(flag, {"n": 0, "o": -1, "ids": [], "ev": [], "f": True, "w": now})
        if category == trend.KIND_TOTAL:
            for size, s, n, parts in counted:
                self._kind_totals(size, s, kind, n, parts, rec, pos, now, out)

    def _kind_totals(self, size: int, start: int, kind: str, n: int, parts: list[dict], rec: dict, pos: int,
                     now: float, out: Outcome) -> None:
        counts, least = {}, n
        for k, total in _KIND_TOTALS:
            if k == kind:
                counts[k] = n
            else:
                counts[k] = count = self._window_count(size, total, start)
                if count < least:
                    least = count
        if size == self._base and start >= self._latest.get((size, f"{kind}/*"), start):
            out.index[kind] = trend.index(n, self._baseline(size, f"{kind}/*", start)[0])
        flag = (size, "divergence", start)
        # every kind surging; under the least count that surges, no baseline needs computing to tell
        if least < self.config.trend_min_count or flag in self.windows:
            return
        stats = {}
        for k, total in _KIND_TOTALS:
            stats[k] = _, _, surges_at = self._baseline(size, total, start)
            if counts[k] < surges_at:
                return
        alert = trend.divergence_alert(size, start, counts, {k: mean for k, (mean, _, _) in stats.items()},
                                       item_ids=_ids(parts), lexicon_version=rec["lv"], created_at=now_iso())
        self._offer(alert, rec["t"], None, pos, out)
        self._put(flag, {"n": 0, "o": -1, "ids": [], "ev": [], "f": True, "w": now})

    # ------------------------------------------------------------------ stories: segments, expiry
    def _store_segment(self, offset: int, now: float, new: dict[str, bytes], raisable: dict[str, bytes],
                       firsts: dict, repeats: list, updated: dict, raw_high: dict) -> None:
        """Keep (and write) the segment of the input record at ``offset``: :func:`read_segment` reads it."""
        segment = {"v": 3, "t": now, "new": {sid: len(raw) for sid, raw in new.items()},
                   "alerts": {sid: len(blob) for sid, blob in raisable.items()},
                   "copies": firsts, "rep": repeats}
        if updated:
            segment["upd"] = updated
        if raw_high:
            segment["raw"] = {str(part): at for part, at in raw_high.items()}
        value = zlib.compress(orjson.dumps(segment), 1) + b"".join(new.values()) + b"".join(raisable.values())
        self.segments[offset] = value
        self._segment_meta[offset] = (now, list(new))
        self.changes.stories[segment_key(offset)] = value

    def _forget(self, now: float, out: Outcome) -> None:
        """Forget the segments past the horizon, and the oldest ones while the stories exceed the cap; the
        trend windows past the longest lookback in wall time since last counted, and the oldest in event time
        while they outnumber the story cap (every 30 s)."""
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
                    self.index.remove(sid, raw)
                    self._alerts.pop(sid, None)
                    self._copies.pop(sid, None)
                    self._revisions.pop(sid, None)
                    out.evicted += 0 if expired else 1
            del self._segment_meta[offset]
            del self.segments[offset]
            self.changes.stories[segment_key(offset)] = None
        if now - self._last_sweep > 30.0:
            self._last_sweep = now
            self._baselines.clear()  # they may count windows forgotten below, and would grow with every window
            self._baseline_high.clear()
            keep = max(c.window_sizes) * (c.trend_lookback + 2)
            for entry, d in list(self.windows.items()):
                if now - d.get("w", now) > keep:
                    del self.windows[entry]
                    self.changes.windows[entry] = None
            if len(self.windows) > c.max_stories:  # a backlog of old news opens windows faster than they age
                for entry in sorted(self.windows, key=lambda e: e[2])[:len(self.windows) - c.max_stories]:
                    del self.windows[entry]
                    self.changes.windows[entry] = None

    # ------------------------------------------------------------------ persistence
    def flush(self) -> Changes:
        """The changes to write (serialised), once per batch; the shard starts collecting afresh."""
        changes = self.changes.take()
        changes.cooldown = {key.encode(): stored_json(s) if (s := self.last_alert.get(key)) is not None else None
                            for key in changes.cooldown}
        changes.windows = {encode_window(entry): stored_json(d) if (d := self.windows.get(entry)) is not None
                           else None for entry in changes.windows}
        return changes

    def restore(self, stories: Iterable[tuple[bytes, bytes]], cooldowns: Iterable[tuple[bytes, bytes]],
                windows: Iterable[tuple[bytes, bytes]], wall: float | None = None) -> None:
        """Rebuild the whole state from stored records (any order), as :meth:`flush` wrote them; ``wall``
        (epoch seconds) starts the event clock at the newest alert kept (else the next item starts it)."""
        self.__init__(self.config)
        for key, value in sorted(stories):
            offset = int(key)
            segment, new, raisable = read_segment(value)
            for sid, raw in new.items():
                self.index.add(Story.loads(sid, raw))
            for sid, blob in raisable.items():
                if sid in self.index.records:
                    self._alerts[sid] = blob
            copies: dict[str, list[dict]] = {}
            for sid, copy in segment.get("copies", {}).items():
                copies[sid] = [copy]
            for sid, source, *kept in segment["rep"]:
                raw = self.index.records.get(sid)
                if raw is not None:
                    story = Story.loads(sid, raw)
                    story.repeat(source)
                    self.index.update(sid, story.dumps())
                    if kept and kept[0] is not None:
                        copies.setdefault(sid, self.copies(sid)).append(kept[0])
            self._copies.update((sid, stored_json(listed)) for sid, listed in copies.items())
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
            self._segment_meta[offset] = (segment["t"], list(new))
        self.last_alert = {key.decode(): orjson.loads(value) for key, value in cooldowns}
        if wall is not None and self.last_alert:
            self.clock.see(max(state["at"] for state in self.last_alert.values()), wall)
        self.windows = {decode_window(key): orjson.loads(value) for key, value in windows}
