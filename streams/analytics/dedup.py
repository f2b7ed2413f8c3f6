"""Duplicate detection over a horizon: exact (id, normalised url, content hash) and near-duplicate.

:class:`DedupIndex` is the in-memory lookup structure of one dedup shard. Its source of truth is one
record per *story* (the first copy) kept in a changelog-backed Faust table; the index is derived from
those records and rebuilt from the table after a restart or rebalance, so only one small record per
story goes through Kafka. A story is forgotten ``horizon`` seconds after its first copy arrived.

Lookups, in order: the item id, the normalised url, the content fingerprint (same words after folding),
then near-duplicates through LSH bands confirmed on the whole MinHash signature.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

import orjson

from streams.analytics import similarity
from streams.records import _digest, content_fingerprint, normalise_url

MAX_SOURCES = 32
"""At most this many corroborating sources are kept per story."""


@dataclass(frozen=True)
class Features:
    """What the dedup stage needs of an item (computed where the item is parsed, sent as Kafka headers)."""

    item_id: str
    url: str = ""
    content: str = ""
    sig: tuple[int, ...] | None = None
    source: str = ""

    @classmethod
    def of(cls, item: dict, stories: bool = True) -> Features:
        """The features of a validated item; ``stories=False`` keeps only the id (repeated ids only)."""
        if not stories:
            return cls(item["id"], "", "", None, str(item.get("source") or ""))
        url = _digest(normalise_url(item["url"])) if item.get("url") else ""
        title, text = item.get("title") or "", item.get("text") or ""
        return cls(item["id"], url, content_fingerprint(title, text), similarity.signature(title, text),
                   str(item.get("source") or ""))

    def headers(self) -> list[tuple[str, bytes]]:
        """Kafka headers carrying the features."""
        out = [("sw-id", self.item_id.encode()), ("sw-url", self.url.encode()),
               ("sw-content", self.content.encode()), ("sw-source", self.source.encode())]
        if self.sig is not None:
            out.append(("sw-sig", similarity.pack(self.sig)))
        return out

    @classmethod
    def from_headers(cls, headers) -> Features:
        """Inverse of :meth:`headers` (a list of pairs or a mapping)."""
        h = dict(headers.items() if hasattr(headers, "items") else headers or ())
        sig = h.get("sw-sig")
        return cls(h["sw-id"].decode(), h.get("sw-url", b"").decode(), h.get("sw-content", b"").decode(),
                   similarity.unpack(sig) if sig else None, h.get("sw-source", b"").decode())


@dataclass
class Story:
    """The first copy of a story: when it arrived, its keys, how often and by whom it was repeated."""

    story_id: str
    first_seen: float
    url: str = ""
    content: str = ""
    sig: tuple[int, ...] | None = None
    source: str = ""
    copies: int = 1
    sources: list[str] = field(default_factory=list)

    @classmethod
    def first(cls, f: Features, now: float) -> Story:
        return cls(f.item_id, now, f.url, f.content, f.sig, f.source, 1, [f.source] if f.source else [])

    def repeat(self, source: str) -> bool:
        """Count one more copy; True when ``source`` is a new corroborating source."""
        self.copies += 1
        if source and source not in self.sources and len(self.sources) < MAX_SOURCES:
            self.sources.append(source)
            return True
        return False

    def dumps(self) -> bytes:
        return orjson.dumps({"t": self.first_seen, "u": self.url, "c": self.content,
                             "s": base64.b64encode(similarity.pack(self.sig)).decode() if self.sig else "",
                             "src": self.source, "n": self.copies, "by": self.sources})

    @classmethod
    def loads(cls, story_id: str, raw: bytes) -> Story:
        d = orjson.loads(raw)
        sig = similarity.unpack(base64.b64decode(d["s"])) if d.get("s") else None
        return cls(story_id, d["t"], d.get("u", ""), d.get("c", ""), sig, d.get("src", ""), d.get("n", 1),
                   list(d.get("by", ())))


def _int(hexdigest: str) -> int:
    return int(hexdigest[:16], 16)


class DedupIndex:
    """Lookup of stories by id, url, content and LSH band (pure, in memory, bounded by the horizon)."""

    def __init__(self, threshold: float = 0.6) -> None:
        self.threshold = threshold
        self.first_seen: dict[str, float] = {}  # story id -> arrival (insertion order ~ time order)
        self.by_url: dict[int, str] = {}
        self.by_content: dict[int, str] = {}
        self.by_band: dict[int, str] = {}
        self.sigs: dict[str, bytes] = {}

    def __len__(self) -> int:
        return len(self.first_seen)

    def check(self, f: Features) -> tuple[str | None, str]:
        """The story ``f`` repeats and why (``id|url|content|near``), or ``(None, "")`` for a new story."""
        if f.item_id in self.first_seen:
            return f.item_id, "id"
        if f.url and (sid := self.by_url.get(_int(f.url))):
            return sid, "url"
        if f.content and (sid := self.by_content.get(_int(f.content))):
            return sid, "content"
        if f.sig is not None:
            seen: set[str] = set()
            for key in similarity.band_keys(f.sig):
                sid = self.by_band.get(key)
                if sid is None or sid in seen:
                    continue
                seen.add(sid)
                other = self.sigs.get(sid)
                if other and similarity.similarity(f.sig, similarity.unpack(other)) >= self.threshold:
                    return sid, "near"
        return None, ""

    def add(self, story: Story) -> None:
        """Index a new story (first writer wins on every key)."""
        sid = story.story_id
        self.first_seen[sid] = story.first_seen
        if story.url:
            self.by_url.setdefault(_int(story.url), sid)
        if story.content:
            self.by_content.setdefault(_int(story.content), sid)
        if story.sig is not None:
            self.sigs[sid] = similarity.pack(story.sig)
            for key in similarity.band_keys(story.sig):
                self.by_band.setdefault(key, sid)

    def remove(self, story: Story) -> None:
        """Forget a story (only the keys that still point to it)."""
        sid = story.story_id
        self.first_seen.pop(sid, None)
        self.sigs.pop(sid, None)
        if story.url and self.by_url.get(k := _int(story.url)) == sid:
            del self.by_url[k]
        if story.content and self.by_content.get(k := _int(story.content)) == sid:
            del self.by_content[k]
        if story.sig is not None:
            for key in similarity.band_keys(story.sig):
                if self.by_band.get(key) == sid:
                    del self.by_band[key]

    def expired(self, now: float, horizon: float) -> list[str]:
        """Ids of the stories first seen more than ``horizon`` seconds before ``now`` (oldest first)."""
        out = []
        for sid, t in self.first_seen.items():
            if now - t <= horizon:
                break
            out.append(sid)
        return out

    def clear(self) -> None:
        for d in (self.first_seen, self.by_url, self.by_content, self.by_band, self.sigs):
            d.clear()

    def rebuild(self, stories) -> None:
        """Rebuild from stored stories (any order; indexed oldest first)."""
        self.clear()
        for story in sorted(stories, key=lambda s: s.first_seen):
            self.add(story)
