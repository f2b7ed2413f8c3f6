"""Duplicate detection over a horizon: exact (id, normalised url, content hash) and near-duplicate.

:class:`DedupIndex` is the in-memory lookup structure of the story shard (streams.analytics.shard):
one small binary record per *story* (its first copy). The shard stores the records of each batch in one
segment and rebuilds the index from the segments after a restart or rebalance.

Lookups, in order: the item id, the normalised url, the content fingerprint (same words after folding),
then near-duplicates through LSH bands confirmed on the whole MinHash signature *and* on the event
(:func:`streams.analytics.event_identity.same_event`: templated reports of strikes on two cities share
most of their wording but are two events).

Memory (bench/bench_dedup.py, per story): a packed binary record (~330 bytes: arrival, position,
copies, 64-bit url and content digests, the 256-byte signature, sources; plus the packed event key, ~70
bytes on the labelled pairs, ~150 on the bench's word-salad items) plus one dict entry per lookup
key (id, url, content, ``BANDS`` LSH
bands with one-digit int keys): ~1.4 KB per story in all, 131 MiB per 100k ~1 KB items (the first
version, JSON + base64 records and the signature held twice: 5.2 KB, 493 MiB). The band entries are
most of it (~60 bytes each); fewer bands would cost recall (see streams.analytics.similarity). Over 20k
bench items (tracemalloc, index and records): 1019 bytes per story with one story per band and no event
key, 1101 with up to ``BAND_STORIES`` per band, 1240 with the event key too.
"""

from __future__ import annotations

import binascii
import struct
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property

from streams.analytics import similarity
from streams.analytics.event_identity import EventKey, may_be_same_event, same_event
from streams.records import content_fingerprint, url_digest

MAX_SOURCES = 32
"""At most this many corroborating sources are kept per story."""
BAND_STORIES = 3
"""At most this many stories per LSH band key. One is not enough: a templated report of another city
shares most bands with the first one, and its own copies must still find it there."""
SIG_INTS = 4096
"""Most story signatures kept as integers (:meth:`DedupIndex.sig_int`): ~1.6 MB. On the bench's items 91%
of the comparisons found theirs (77.7% with 1,024)."""


@dataclass(frozen=True)
class Features:
    """What the story shard needs of an item to find its story (computed by the process stage, carried
    in the batch record: :meth:`wire`)."""

    item_id: str
    url: str = ""
    content: str = ""
    sig: bytes | None = None
    """The packed MinHash signature (:func:`similarity.pack`): compared, indexed and stored as bytes."""
    source: str = ""
    shingles: int = 0
    """How many distinct shingles the signature was made of (0: unknown); short texts need a higher
    similarity."""
    event: bytes = b""
    """The item's packed :class:`EventKey` (b"": unknown, the sketch alone decides)."""

    @cached_property
    def bands(self) -> list[int]:
        """The LSH band keys of the signature (computed once: the story shard looks up and then indexes)."""
        return similarity.band_keys(self.sig) if self.sig is not None else []

    @cached_property
    def event_key(self) -> EventKey | None:
        """The unpacked event key (once, and only when a near-duplicate candidate needs it)."""
        return EventKey.unpack(self.event) if self.event else None

    @classmethod
    def of(cls, item: dict, stories: bool = True, event: EventKey | None = None) -> Features:
        """The features of a validated item; ``stories=False`` keeps only the id (repeated ids only);
        ``event``: its event key (from the tagged item)."""
        if not stories:
            return cls(item["id"], "", "", None, str(item.get("source") or ""))
        url = url_digest(item["url"]) if item.get("url") else ""
        title, text = item.get("title") or "", item.get("text") or ""
        sig, count = similarity.sketch(title, text)
        return cls(item["id"], url, content_fingerprint(title, text), sig,
                   str(item.get("source") or ""), count,
                   event.pack() if event is not None else b"")

    def wire(self) -> list:
        """A JSON-ready list (a story segment's updates; news.processed records of format 2): id, url digest,
        content digest, signature (base64 of the packed bins or ""), source, shingle count, event key (base64
        of the packed key or ""), LSH band keys (base64 of ``BANDS`` uint32, or ""; the process stage
        computes them so that the story shard does not)."""
        sig = bands = ""
        if self.sig is not None:
            sig, bands = _b64(self.sig), _b64(_BANDS.pack(*self.bands))
        return [self.item_id, self.url, self.content, sig, self.source, self.shingles, _b64(self.event), bands]

    def parts(self) -> tuple[list, bytes]:
        """The form of a news.processed record (batch format 3): a JSON-ready head, id, url digest, content
        digest, source, shingle count and the lengths of the signature, the band keys (``BANDS`` uint32)
        and the event key, whose bytes follow back to back. Not base64 in the JSON: decoding it was ~2% of
        the serial story shard's instructions."""
        sig = self.sig or b""
        bands = _BANDS.pack(*self.bands) if self.sig is not None else b""
        return ([self.item_id, self.url, self.content, self.source, self.shingles, len(sig), len(bands),
                 len(self.event)], sig + bands + self.event)

    @classmethod
    def from_parts(cls, head: list, blob: bytes) -> Features:
        """Inverse of :meth:`parts` (``blob``: the bytes its lengths count)."""
        item_id, url, content, source, shingles, n_sig, n_bands, n_event = head
        f = cls(item_id, url, content, blob[:n_sig] if n_sig else None, source, shingles,
                blob[n_sig + n_bands:n_sig + n_bands + n_event])
        if n_bands:
            f.__dict__["bands"] = list(_BANDS.unpack_from(blob, n_sig))  # the cached property
        return f

    @classmethod
    def from_wire(cls, w: list) -> Features:
        """Inverse of :meth:`wire` (records of earlier versions lack the event key and the band keys)."""
        item_id, url, content, sig, source, shingles, *rest = w
        b64 = binascii.a2b_base64  # base64.b64decode less its Python wrapper (three per item)
        f = cls(item_id, url, content, b64(sig) if sig else None, source,
                int(shingles), b64(rest[0]) if rest and rest[0] else b"")
        if len(rest) > 1 and rest[1]:
            f.__dict__["bands"] = list(_BANDS.unpack(b64(rest[1])))  # the cached property
        return f


_BANDS = struct.Struct(f"<{similarity.BANDS}I")


def _b64(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).decode("ascii")

_HEAD = struct.Struct("<BdqI8s8sHH")
"""Story record: format version, first_seen, position (of the batch entry that made it), copies, url
digest, content digest, signature length, event key length; then the packed signature, the packed event
key, then ``source`` and ``sources`` joined by US (0x1f), UTF-8."""
_VERSION = 3
_HEAD_V2 = struct.Struct("<BdqI8s8sH")
"""The previous record (no event key), still read from the tables' changelogs."""
_NONE = bytes(8)
_URL_AT = struct.calcsize("<BdqI")  # the url and content digests' place in both formats
_URL_CONTENT = struct.Struct("<8s8s")
_SEP = "\x1f"
_SIG_EVENT_AT = _HEAD.size - 4  # the signature's and event key's lengths, last in the head
_SIG_EVENT = struct.Struct("<HH")


def _raw8(hexdigest: str) -> bytes:
    return bytes.fromhex(hexdigest[:16]) if hexdigest else _NONE


def _hex8(raw: bytes) -> str:
    return "" if raw == _NONE else raw.hex()


@dataclass
class Story:
    """The first copy of a story: when it arrived, its keys, how often and by whom it was repeated."""

    story_id: str
    first_seen: float
    url: str = ""
    content: str = ""
    sig: bytes | None = None
    """Packed, as :attr:`Features.sig`."""
    source: str = ""
    copies: int = 1
    sources: list[str] = field(default_factory=list)
    position: int = -1
    """Where the story shard read the first copy (input offset and place in its batch record): a replay
    of that very entry re-sends its outputs instead of calling it a duplicate of itself."""
    event: bytes = b""
    """The packed :class:`EventKey` of the first copy (b"": none, a record of the previous version)."""
    raw: bytes | None = field(default=None, compare=False, repr=False)
    """The record this story was loaded from (the index keeps it, not the decoded story)."""

    @classmethod
    def first(cls, f: Features, now: float, position: int = -1) -> Story:
        return cls(f.item_id, now, f.url, f.content, f.sig, f.source, 1, [f.source] if f.source else [],
                   position, f.event)

    def repeat(self, source: str) -> bool:
        """Count one more copy; True when ``source`` is a new corroborating source."""
        self.copies += 1
        if source and source not in self.sources and len(self.sources) < MAX_SOURCES:
            self.sources.append(source)
            return True
        return False

    def revised(self, f: Features) -> Story:
        """This story as of an update ``f`` of its first copy (same id, changed text): the update's url,
        content, signature and event key; arrival, position, copies and sources kept."""
        return Story(self.story_id, self.first_seen, f.url or self.url, f.content, f.sig, self.source, self.copies,
                     list(self.sources), self.position, f.event)

    def dumps(self) -> bytes:
        """The compact binary record (url and content kept as their first 64 bits, all the index uses)."""
        sig = self.sig or b""
        names = _SEP.join(n.replace(_SEP, " ") for n in (self.source, *self.sources))
        self.raw = (_HEAD.pack(_VERSION, self.first_seen, self.position, self.copies, _raw8(self.url),
                               _raw8(self.content), len(sig), len(self.event)) + sig + self.event
                    + names.encode("utf-8", "surrogatepass"))
        return self.raw

    @classmethod
    def loads(cls, story_id: str, raw: bytes) -> Story:
        if raw[0] == _VERSION:
            _, first_seen, position, copies, url, content, n, k = _HEAD.unpack_from(raw)
            start = _HEAD.size
        else:
            (_, first_seen, position, copies, url, content, n), k, start = _HEAD_V2.unpack_from(raw), 0, _HEAD_V2.size
        sig = raw[start:start + n] if n else None
        event = raw[start + n:start + n + k]
        source, *sources = raw[start + n + k:].decode("utf-8", "surrogatepass").split(_SEP)
        return cls(story_id, first_seen, _hex8(url), _hex8(content), sig, source, copies, sources, position,
                   event, raw)

    @staticmethod
    def first_seen_of(raw: bytes) -> float:
        return _HEAD_V2.unpack_from(raw)[1]  # the fields both formats share

    @staticmethod
    def position_of(raw: bytes) -> int:
        return _HEAD_V2.unpack_from(raw)[2]

    @staticmethod
    def _spans(raw: bytes) -> tuple[int, int, int]:
        """Where the signature starts, its length and the event key's length."""
        if raw[0] == _VERSION:
            n, k = _SIG_EVENT.unpack_from(raw, _SIG_EVENT_AT)
            return _HEAD.size, n, k
        return _HEAD_V2.size, _HEAD_V2.unpack_from(raw)[6], 0

    @staticmethod
    def sig_of(raw: bytes) -> bytes | None:
        start, n, _ = Story._spans(raw)
        return raw[start:start + n] if n == similarity.PACKED_SIZE else None

    @staticmethod
    def event_of(raw: bytes) -> bytes:
        """The packed event key (b"" without one)."""
        start, n, k = Story._spans(raw)
        return raw[start + n:start + n + k]


def _int(hexdigest: str) -> int:
    return int(hexdigest[:16], 16)


class DedupIndex:
    """Lookup of stories by id, url, content and LSH band (pure, in memory, bounded by the horizon)."""

    def __init__(self, threshold: float = 0.45) -> None:
        self.threshold = threshold
        self.records: dict[str, bytes] = {}  # story id -> its record (insertion order ~ arrival order)
        self.by_url: dict[int, str] = {}
        self.by_content: dict[int, str] = {}
        self.by_band: dict[int, str | tuple[str, ...]] = {}  # a tuple once stories share the key
        self.aliases: dict[str, list[int]] = {}  # updated story id -> content digests of its earlier revisions
        self.sig_ints: dict[str, int] = {}
        """Story id -> its signature as :func:`similarity.as_int` makes it, for the stories compared lately
        (up to :data:`SIG_INTS`): the same few stories are candidates again and again (templated reports
        share bands), and making the integer of 256 bytes cost 3% of the story shard's instructions."""
        self.event_keys: dict[str, EventKey] = {}
        """Story id -> its unpacked event key, for stories in :attr:`sig_ints` whose key was compared: the
        same templated stories pass the sketch again and again too (37k unpacks on 30k bench items; kept,
        -2.1% of the story shard's instructions)."""

    def __len__(self) -> int:
        return len(self.records)

    def check(self, f: Features) -> tuple[str | None, str]:
        """The story ``f`` repeats and why (``id|url|content|near``), or ``(None, "")`` for a new story."""
        if f.item_id in self.records:
            return f.item_id, "id"
        if f.url and (sid := self.by_url.get(_int(f.url))):
            return sid, "url"
        if f.content and (sid := self.by_content.get(_int(f.content))):
            return sid, "content"
        if f.sig is not None:
            held_by_bands: list[str] = []  # counted once, in C (a Counter's += per key runs in Python)
            for held in map(self.by_band.get, f.bands):
                if held is None:
                    continue
                if type(held) is str:
                    held_by_bands.append(held)
                else:
                    held_by_bands.extend(held)
            if len(held_by_bands) < similarity.MIN_BANDS:
                return None, ""
            candidates = [sid for sid, n in Counter(held_by_bands).items() if n >= similarity.MIN_BANDS]
            if candidates:
                sig, needed = similarity.as_int(f.sig), similarity.threshold_for(f.shingles, self.threshold)
                for sid in candidates:
                    raw = self.records.get(sid)
                    if raw and (story_sig := self.sig_int(sid, raw)) is not None \
                            and self.same_story(f, sig, sid, raw, story_sig, needed):
                        return sid, "near"
        return None, ""

    def same_story(self, item: Features, item_sig: int, sid: str, story_raw: bytes, story_sig: int,
                   needed: float) -> bool:
        """Confirm a near-duplicate candidate (it shares LSH bands with story ``sid``) as a copy of that story.

        The one place where "near" becomes "the same story": the estimated Jaccard similarity of the whole
        signatures (``item_sig`` and ``story_sig``: :func:`similarity.as_int` of each, the story's from
        :meth:`sig_int`) reaches ``needed`` (:func:`similarity.threshold_for` the item), and the two report
        the same event (:func:`same_event`, after :func:`may_be_same_event` on the packed keys; when either
        key is unknown, a record written before keys were kept, the sketch alone decides)."""
        if similarity.agreement(item_sig, story_sig) < needed:
            return False
        start, n, k = Story._spans(story_raw)
        stored, event = story_raw[start + n:start + n + k], item.event
        if not stored or not event or stored == event:
            return True
        if not may_be_same_event(stored, event):
            return False
        story_key = self.event_keys.get(sid)
        if story_key is None:
            story_key = self.event_keys[sid] = EventKey.unpack(stored)
        return same_event(story_key, item.event_key)

    def sig_int(self, sid: str, raw: bytes) -> int | None:
        """Story ``sid``'s signature (its record ``raw``) as an integer, None without a whole one (a record
        of the first format); kept while ``sid`` is indexed, for up to :data:`SIG_INTS` stories (all are
        forgotten when that is reached: no order to keep on every comparison)."""
        found = self.sig_ints.get(sid)
        if found is None:
            sig = Story.sig_of(raw)
            if sig is None:
                return None
            if len(self.sig_ints) >= SIG_INTS:
                self.sig_ints.clear()
                self.event_keys.clear()
            found = self.sig_ints[sid] = similarity.as_int(sig)
        return found

    def add(self, story: Story, bands: list[int] | None = None) -> None:
        """Index a new story (first writer wins on every key but a band, which keeps up to
        :data:`BAND_STORIES`); keeps ``story.raw`` (dumped if unset). ``bands``: its band keys when
        already known (:attr:`Features.bands`)."""
        sid = story.story_id
        self.records[sid] = story.raw if story.raw is not None else story.dumps()
        if story.url:
            self.by_url.setdefault(_int(story.url), sid)
        if story.content:
            self.by_content.setdefault(_int(story.content), sid)
        if story.sig is not None:
            by_band = self.by_band
            for key in bands or similarity.band_keys(story.sig):
                held = by_band.get(key)
                if held is None:
                    by_band[key] = sid
                elif type(held) is str:
                    if held != sid:
                        by_band[key] = (held, sid)
                elif len(held) < BAND_STORIES and sid not in held:
                    by_band[key] = (*held, sid)

    def replace(self, story: Story, bands: list[int] | None = None) -> None:
        """Re-key a known story (an update changed its text): its new keys come (:meth:`add`), the keys of
        its current record go but the content digest, which stays the story's until it is removed, so an
        exact reprint of an earlier revision is still a copy (a near one is compared with the latest)."""
        sid = story.story_id
        raw = self.records.get(sid)
        if raw is not None:
            old = Story.loads(sid, raw)
            aliases = self.aliases.pop(sid, [])
            if old.content:
                aliases.append(_int(old.content))
            self.remove(sid, raw)
            if aliases:
                self.aliases[sid] = aliases
                for key in aliases:
                    self.by_content.setdefault(key, sid)
        story.dumps()
        self.add(story, bands)

    def had_content(self, sid: str, content: str) -> bool:
        """Whether an earlier revision of story ``sid`` had the content digest ``content``."""
        return bool(content) and _int(content) in self.aliases.get(sid, ())

    def update(self, sid: str, raw: bytes) -> None:
        """Replace a known story's record (a repeat was counted); its keys do not change."""
        if sid in self.records:
            self.records[sid] = raw

    def remove(self, sid: str, raw: bytes) -> None:
        """Forget story ``sid`` whose record is ``raw`` (only the keys that still point to it), read from the
        record's bytes: no :class:`Story` is decoded for it."""
        self.records.pop(sid, None)
        self.sig_ints.pop(sid, None)
        self.event_keys.pop(sid, None)
        url, content = _URL_CONTENT.unpack_from(raw, _URL_AT)
        if url != _NONE and self.by_url.get(k := int.from_bytes(url, "big")) == sid:
            del self.by_url[k]
        contents = [int.from_bytes(content, "big")] if content != _NONE else []
        for k in (*contents, *self.aliases.pop(sid, ())):
            if self.by_content.get(k) == sid:
                del self.by_content[k]
        sig = Story.sig_of(raw)
        if sig is not None:
            by_band = self.by_band
            for key in similarity.band_keys(sig):
                held = by_band.get(key)
                if held == sid:
                    del by_band[key]
                elif type(held) is tuple and sid in held:
                    rest = tuple(s for s in held if s != sid)
                    by_band[key] = rest[0] if len(rest) == 1 else rest

    def expired(self, now: float, horizon: float) -> list[str]:
        """Ids of the stories first seen more than ``horizon`` seconds before ``now`` (oldest first)."""
        out = []
        for sid, raw in self.records.items():
            if now - Story.first_seen_of(raw) <= horizon:
                break
            out.append(sid)
        return out

    def overflow(self, max_stories: int) -> list[str]:
        """Ids of the oldest stories beyond the ``max_stories`` newest (forget them to bound memory)."""
        extra = len(self.records) - max_stories
        if extra <= 0:
            return []
        it = iter(self.records)
        return [next(it) for _ in range(extra)]

    def clear(self) -> None:
        for d in (self.records, self.by_url, self.by_content, self.by_band, self.aliases, self.sig_ints,
                  self.event_keys):
            d.clear()

    def rebuild(self, stories) -> None:
        """Rebuild from stored stories (any order; indexed oldest first)."""
        self.clear()
        for story in sorted(stories, key=lambda s: s.first_seen):
            self.add(story)
