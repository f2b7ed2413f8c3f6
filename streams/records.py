"""News item records: parse, validate, normalise, derive ids; build tagged items and dead letters.

Pure functions (no Kafka); the ingest agent, ``signalwatch push`` / ``classify`` and ``POST /news`` all
use them, so an item gets the same id wherever it enters.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
import unicodedata
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import jsonschema
import jsonschema_rs
import orjson

from streams.settings import SCHEMA_DIR

# Query parameters that only track the reader; dropped so that one story has one id.
_TRACKING = ("utm_", "fbclid", "gclid", "mc_cid", "mc_eid", "ref", "cmpid", "ocid")


class InvalidItem(ValueError):
    """A message that is not an acceptable news item. ``reason`` is a short code, ``detail`` says why."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@lru_cache(maxsize=8)
def load_schema(name: str, schemas_dir: Path = SCHEMA_DIR) -> dict:
    """A JSON Schema from ``schemas/`` by file name."""
    path = Path(schemas_dir) / name
    try:
        return orjson.loads(path.read_bytes())
    except FileNotFoundError as exc:
        raise FileNotFoundError(
            f"schema {path} not found: set SIGNALWATCH_SCHEMAS_DIR to the project's schemas/ folder") from exc


_RFC3339 = re.compile(r"^\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)$")
FORMATS = jsonschema.FormatChecker(formats=())


@lru_cache(maxsize=64)
def parse_rfc3339(value: str) -> datetime:
    """An aware datetime of an RFC 3339 timestamp; ValueError when ``value`` is not one (no zone, a bad
    field). The one parser of timestamps: the schemas' ``date-time``, event times, receive times. Cached
    (a few entries): the process stage reads an item's ``published_at`` three times (validation, the
    tagged record's facts, its trend record)."""
    if not _RFC3339.match(value):
        raise ValueError(f"not an RFC 3339 timestamp with a time zone: {value[:40]!r}")
    return datetime.fromisoformat(value.replace("z", "Z").replace("Z", "+00:00"))


def epoch(value: str) -> float:
    """Epoch seconds of an RFC 3339 timestamp (ValueError as :func:`parse_rfc3339`)."""
    return parse_rfc3339(value).timestamp()


@FORMATS.checks("date-time", raises=ValueError)
def is_rfc3339(value: object) -> bool:
    """RFC 3339 date-time with a time zone (the ``date-time`` format of the schemas)."""
    if not isinstance(value, str):
        return True
    if not _RFC3339.match(value):
        return False
    parse_rfc3339(value)
    return True


@lru_cache(maxsize=8)
def validator(name: str, schemas_dir: Path = SCHEMA_DIR) -> jsonschema.protocols.Validator:
    """A compiled 2020-12 validator (with RFC 3339 format checks) for one schema."""
    schema = load_schema(name, schemas_dir)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=FORMATS)


def stored_json(value: object) -> bytes:
    """``orjson.dumps(value)`` for bytes kept in memory (table data, a story's copies). orjson (3.12+) leaves
    its whole output buffer, ~4 KB even for a small record, allocated behind each result; a kept result
    is copied to its own size (measured: 4.1 KB of RSS per small record, 0.1 KB copied)."""
    return bytes(memoryview(orjson.dumps(value)))


def now_iso() -> str:
    """The current UTC time in RFC 3339 with milliseconds (``2026-11-30T12:00:00.123Z``). The process
    stage stamps every item and alert: the second's text is formatted once (a fifth of the cost of
    ``datetime.isoformat``)."""
    seconds, nanos = divmod(time.time_ns(), 1_000_000_000)
    return f"{_utc_second(seconds)}.{nanos // 1_000_000:03d}Z"


@lru_cache(maxsize=2)
def _utc_second(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


def normalise_url(url: str) -> str:
    """A canonical form of a URL: lower-case scheme and host, no fragment, no tracking parameters,
    sorted query, no trailing slash, ``http`` and ``https`` treated alike."""
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower().removeprefix("www.")
    port = parts.port  # parsed from the netloc on each access
    if port and port not in (80, 443):
        host = f"{host}:{port}"
    query = parts.query and urlencode(sorted((k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
                                             if not k.lower().startswith(_TRACKING)))
    path = parts.path.rstrip("/") or ""
    return urlunsplit(("https", host, path, query, ""))


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:24]


@lru_cache(maxsize=1024)
def url_digest(url: str) -> str:
    """The digest of the normalised ``url`` (ValueError when it has none): part of an id (``u-``), the
    story shard's url key. Cached for a batch of news.raw (up to 500 messages): the process stage needs it
    of each item three times, in validation and for the id when it parses the batch, then for the dedup
    features a step later (streams.processing), and normalising is most of the cost."""
    return _digest(normalise_url(url))


def content_fingerprint(title: str, text: str) -> str:
    """Hash of the item's words after Unicode, case and whitespace folding."""
    folded = unicodedata.normalize("NFKC", f"{title}\n{text}").casefold()
    return _digest(" ".join(folded.split()))


def derive_id(item: dict) -> str:
    """The item's id: its own ``id``, else ``u-`` + hash of the normalised url, else ``c-`` + content hash."""
    if item.get("id"):
        return str(item["id"])
    if item.get("url"):
        return "u-" + url_digest(item["url"])
    return "c-" + content_fingerprint(item.get("title") or "", item.get("text") or "")


def _schema_detail(error: jsonschema.ValidationError) -> str:
    where = "/".join(str(p) for p in error.absolute_path) or "(item)"
    if error.validator == "anyOf" and not error.absolute_path:
        return "the item needs a non-empty title or text"
    message = error.message
    if len(message) > 200:
        message = message[:200] + "…"
    return f"{where}: {message}"


def parse_item(raw: bytes | str | None, max_bytes: int = 1024 * 1024) -> dict:
    """Parse and validate one message value as a news item; return it normalised with its ``id``.

    Raises :class:`InvalidItem` with reason ``empty``, ``too_large``, ``bad_utf8``, ``not_json``,
    ``not_object``, ``schema`` or ``no_text``.
    """
    if raw is None or len(raw) == 0:
        raise InvalidItem("empty", "the message has no value")
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")
    if len(raw) > max_bytes:
        raise InvalidItem("too_large", f"{len(raw)} bytes is over the limit of {max_bytes} bytes")
    try:
        item = orjson.loads(raw)  # rejects invalid UTF-8 anywhere in ``raw`` too: which of the two, below
    except orjson.JSONDecodeError as exc:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as bad:
            raise InvalidItem("bad_utf8", f"not valid UTF-8 at byte {bad.start}") from None
        raise InvalidItem("not_json", str(exc)[:200]) from None
    if not isinstance(item, dict):
        raise InvalidItem("not_object", f"expected a JSON object, got {type(item).__name__}")
    if _deeper_than(item, MAX_DEPTH):  # orjson reads 1024 levels but writes only 255: the agents re-encode
        raise InvalidItem("schema", f"(item): nested deeper than {MAX_DEPTH} levels")
    return validate_item(item)


MAX_DEPTH = 64
"""Deepest nesting of objects and arrays accepted in an item (unknown fields included)."""


def _deeper_than(value: object, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        children = node.values() if isinstance(node, dict) else node
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return False


@lru_cache(maxsize=8)
def fast_validator(name: str, schemas_dir: Path = SCHEMA_DIR) -> jsonschema_rs.Validator:
    """The same schema compiled by jsonschema-rs, formats off (``date-time`` is checked by
    :func:`is_rfc3339`, the one parser): only says yes or no, ~1 µs per item against ~100 µs."""
    return jsonschema_rs.validator_for(load_schema(name, schemas_dir), validate_formats=False)


def _valid_fast(item: dict) -> bool:
    """The common case, decided without the Python validator: jsonschema-rs accepts the item, its
    timestamp is RFC 3339 and title or text has a character that Python's ``str.strip`` keeps (Rust's
    ``\\S`` counts U+001C-U+001F as text, Python as space). Anything else takes the slow path, which
    words the error."""
    if not fast_validator("news-item.v1.json").is_valid(item):
        return False
    stamp = item.get("published_at")
    if stamp is not None:
        try:
            parse_rfc3339(stamp)
        except ValueError:
            return False
    return any(isinstance(v, str) and v.strip() for v in (item.get("title"), item.get("text")))


def validate_item(item: dict) -> dict:
    """Validate a decoded item against ``news-item.v1.json``; return it with ``id`` and tidy text."""
    if not _valid_fast(item):
        errors = sorted(validator("news-item.v1.json").iter_errors(item), key=lambda e: e.path)
        if errors:
            error = errors[0]
            reason = "no_text" if error.validator == "anyOf" and not error.absolute_path else "schema"
            raise InvalidItem(reason, _schema_detail(error))
    for name in ("title", "text"):
        value = item.get(name)
        if isinstance(value, str):
            item[name] = value.strip()
        else:
            item[name] = ""
    if item.get("url"):  # later stages normalise it (ids, dedup): an unusable url is rejected here
        try:
            url_digest(item["url"])
        except ValueError as exc:  # urlsplit: bad IPv6 host, port out of range
            raise InvalidItem("schema", f"url: not a valid URL ({exc})"[:200]) from None
    item["id"] = derive_id(item)
    return item


DEAD_LETTER_ORIGINAL_MAX = 5 * 512 * 1024
"""Bytes of an invalid message kept in its dead letter: 2.5 MiB (3.3 MiB as base64, under the 4 MiB
producer request limit), so anything up to 2.5 times the default item limit is kept whole."""


def dead_letter(reason: str, detail: str, original: bytes | None, *, topic: str, partition: int,
                offset: int, key: bytes | None = None) -> bytes:
    """The JSON value of a ``news.deadletter`` record (original bytes kept as base64).

    Originals over :data:`DEAD_LETTER_ORIGINAL_MAX` bytes keep only their head (``original_truncated``
    is then true; the whole message stays at ``topic``/``partition``/``offset``): a 3 MiB message is
    4 MiB in base64, over the producer's request limit, and its dead letter could not be sent.
    """
    original = original or b""
    kept = original[:DEAD_LETTER_ORIGINAL_MAX]
    return orjson.dumps({
        "reason": reason,
        "detail": detail,
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "original": base64.b64encode(kept).decode("ascii"),
        "original_size": len(original),
        "original_truncated": len(kept) < len(original),
        "original_sha256": hashlib.sha256(original).hexdigest(),
        "key": base64.b64encode(key).decode("ascii") if key is not None else None,
        "failed_at": now_iso(),
    })


def tagged_item(item: dict, tags: dict, received_at: str) -> dict:
    """The ``news.tagged`` record: the item's fields plus the tagger's results and timestamps."""
    out = dict(item)
    out.update(tags)
    out["received_at"] = received_at
    out["tagged_at"] = now_iso()
    return out
