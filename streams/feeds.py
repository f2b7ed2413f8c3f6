"""Reading feed files into news items: JSONL, CSV, RSS/Atom and plain text (one item a line).

Every reader yields :class:`FeedRecord` values — an item ready to send or the reason it was rejected —
so ``push``, ``classify``, ``feed poll`` and ``POST /news`` treat every format alike. Items get their id
from :func:`streams.records.validate_item` (``derive_id``), exactly as the worker derives it, so the same
story read twice carries the same id and the worker drops the copy.

A problem with the whole file (a CSV header without a text column, a document that is no feed) raises
:class:`FeedError`, whose message names the fix; a problem with one entry is a rejected record.
"""

from __future__ import annotations

import csv
import io
import itertools
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

import orjson

from streams.records import InvalidItem, parse_item, validate_item

SAMPLE_FEED = Path(__file__).resolve().parent / "data" / "sample_feed.jsonl"

FORMATS = ("auto", "jsonl", "csv", "feed", "text")
"""Input formats of :func:`read_feed` (``feed`` = RSS or Atom)."""

ITEM_FIELDS = ("id", "title", "text", "url", "source", "published_at", "language")
"""Fields of a news item that a CSV column can fill (by the same name, or through ``--map``)."""

_SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv", ".tsv": "csv",
             ".rss": "feed", ".atom": "feed", ".xml": "feed", ".txt": "text", ".text": "text"}


class FeedError(ValueError):
    """The file as a whole cannot be read as the format asked for; the message says what to do."""


@dataclass
class FeedRecord:
    """One entry of a feed: a valid ``item`` or an ``error`` (an :class:`InvalidItem`), with where it was."""

    where: str
    raw: bytes
    item: dict | None = None
    error: InvalidItem | None = None


def _open(path: str) -> BinaryIO:
    if path == "-":
        return sys.stdin.buffer
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise FeedError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise FeedError(f"{path}: is a directory, not a feed file") from None


def detect_format(path: str, head: bytes) -> str:
    """``jsonl``, ``csv``, ``feed`` or ``text``: from the file name, else from the first bytes."""
    fmt = _SUFFIXES.get(Path(path).suffix.lower())
    if fmt:
        return fmt
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if start.startswith(b"{"):
        return "jsonl"
    if start.startswith(b"<"):
        return "feed"
    return "text"


def parse_mapping(pairs: Iterable[str]) -> dict[str, str]:
    """``["title=headline", "text=body"]`` → ``{"title": "headline", "text": "body"}`` (item field → column)."""
    mapping: dict[str, str] = {}
    for pair in pairs:
        field, sep, column = pair.partition("=")
        field, column = field.strip(), column.strip()
        if not sep or not field or not column:
            raise FeedError(f"--map {pair!r}: use FIELD=COLUMN, e.g. --map text=body")
        if field not in ITEM_FIELDS:
            raise FeedError(f"--map {pair!r}: {field!r} is not an item field; use one of {', '.join(ITEM_FIELDS)}")
        mapping[field] = column
    return mapping


def read_feed(path: str, fmt: str = "auto", max_bytes: int = 1024 * 1024,
              mapping: Mapping[str, str] | None = None, delimiter: str | None = None) -> Iterator[FeedRecord]:
    """Yield one :class:`FeedRecord` per item of a file (``-`` is stdin) in any of :data:`FORMATS`.

    ``mapping`` (item field → CSV column) and ``delimiter`` (default: tab for ``.tsv``, else guessed from
    the header) apply to CSV only; other formats ignore them, so one ``push`` can mix a mapped CSV with
    JSONL or feeds. Raises :class:`FeedError` for a file that cannot be read at all (no such file, bad
    CSV header, not a feed).
    """
    if fmt not in FORMATS:
        raise FeedError(f"format {fmt!r}: use one of {', '.join(FORMATS)}")
    source = "stdin" if path == "-" else Path(path).name
    handle = _open(path)
    try:
        if fmt == "auto":
            if not hasattr(handle, "peek"):  # a stream that cannot look ahead (tests' stdin): read it
                handle = io.BufferedReader(io.BytesIO(handle.read()))  # type: ignore[arg-type]
            head = handle.peek(512)[:512]
            fmt = detect_format(path, head)
        if fmt == "csv":
            if delimiter is None and Path(path).suffix.lower() == ".tsv":
                delimiter = "\t"
            yield from read_csv(handle, source, mapping or {}, max_bytes, delimiter)
        elif fmt == "feed":
            yield from read_rss(handle.read(), source, max_bytes)
        else:
            yield from _read_lines(handle, source, fmt, max_bytes)
    finally:
        if path != "-":
            handle.close()


def _read_lines(handle: BinaryIO, source: str, fmt: str, max_bytes: int) -> Iterator[FeedRecord]:
    for number, line in enumerate(handle, 1):
        raw = line.rstrip(b"\r\n")
        if not raw.strip():
            continue
        where = f"{source}:{number}"
        try:
            if fmt == "jsonl":
                item = parse_item(raw, max_bytes)
            else:
                item = _checked({"text": raw.decode("utf-8", errors="strict"), "source": source}, max_bytes)
            yield FeedRecord(where, raw, item=item)
        except InvalidItem as exc:
            yield FeedRecord(where, raw, error=exc)
        except UnicodeDecodeError as exc:
            yield FeedRecord(where, raw, error=InvalidItem("bad_utf8", f"not valid UTF-8 at byte {exc.start}"))


def _checked(item: dict, max_bytes: int) -> dict:
    """Validate an item built from a non-JSON format, with the worker's size limit."""
    item = validate_item(item)
    size = len(orjson.dumps(item))
    if size > max_bytes:
        raise InvalidItem("too_large", f"{size} bytes is over the limit of {max_bytes} bytes")
    return item


# ---------------------------------------------------------------- dates
def to_rfc3339(value: str | None) -> str | None:
    """An RFC 3339 UTC timestamp from ISO 8601 or RFC 822 dates (as feeds and spreadsheets write them);
    ``None`` when the value is empty or not a date we can read."""
    if not value or not value.strip():
        return None
    value = value.strip()
    parsed: datetime | None = None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        try:
            parsed = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _struct_to_rfc3339(value: time.struct_time | None) -> str | None:
    if not value:
        return None
    return datetime(*value[:6], tzinfo=timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


# ---------------------------------------------------------------- CSV
CSV_DELIMITERS = ",;\t|"
"""The separators :func:`sniff_delimiter` considers."""


def sniff_delimiter(header: str) -> str:
    """The separator of a CSV header line: the most frequent of :data:`CSV_DELIMITERS` outside quotes
    (``,`` when there is none)."""
    outside = "".join(header.split('"')[::2])
    counts = {d: outside.count(d) for d in CSV_DELIMITERS}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def read_csv(handle: BinaryIO, source: str, mapping: Mapping[str, str], max_bytes: int = 1024 * 1024,
             delimiter: str | None = ",") -> Iterator[FeedRecord]:
    """Rows of a CSV file with a header line as items, strictly: a row with more or fewer fields than the
    header, or a quote out of place, is rejected with its line number rather than read with shifted
    columns.

    A column fills the item field of the same name (case-insensitive) unless ``mapping`` (field →
    column) says otherwise; other columns are ignored. Dates are converted to RFC 3339 when possible.
    ``delimiter=None`` guesses it from the header line (:func:`sniff_delimiter`).
    """
    text = io.TextIOWrapper(handle, encoding="utf-8-sig", newline="", errors="strict")
    try:
        try:
            first = text.readline()
        except UnicodeDecodeError as exc:
            raise FeedError(f"{source}: the CSV header is not valid UTF-8 (byte {exc.start}): save it as UTF-8") \
                from None
        if not first.strip():
            return
        guessed = delimiter is None
        delimiter = sniff_delimiter(first) if guessed else delimiter
        reader = csv.reader(itertools.chain([first], text), delimiter=delimiter, strict=True)
        try:
            header = next(reader)
        except csv.Error as exc:
            raise FeedError(f"{source}:1: the CSV header cannot be read ({exc}): fix its quotes") from None
        columns = {name.strip(): i for i, name in enumerate(header)}
        lower = {name.lower(): i for name, i in columns.items()}
        positions: dict[str, int] = {}
        for field in ITEM_FIELDS:
            if field in mapping:
                column = mapping[field]
                if column not in columns:
                    raise FeedError(
                        f"column {column!r} not in CSV header ({', '.join(columns)}): use --map {field}=<column>")
                positions[field] = columns[column]
            elif field in lower:
                positions[field] = lower[field]
        if "title" not in positions and "text" not in positions:
            hint = (f"; its fields are separated by {delimiter!r} (guessed): if that is wrong, pass --delimiter"
                    if guessed else f"; is {delimiter!r} the right --delimiter?")
            raise FeedError(f"{source}: no title or text column in the CSV header ({', '.join(columns)}){hint}; "
                            "else use --map text=<column> (and/or --map title=<column>)")
        width = len(header)
        end = 1  # the last physical line of the previous row
        while True:
            start = end + 1
            try:
                row = next(reader)
            except StopIteration:
                break
            except UnicodeDecodeError as exc:
                yield FeedRecord(f"{source}:{start}", b"",
                                 error=InvalidItem("bad_utf8", f"not valid UTF-8 at byte {exc.start}"))
                break
            except csv.Error as exc:
                if reader.line_num > end + 1 or "end of data" in str(exc):  # a quote opened and never closed
                    yield FeedRecord(f"{source}:{start}", b"", error=InvalidItem(
                        "bad_csv", f"a quoted field opened on line {start} is not closed ({exc}): close the quote, "
                                   'or write a quote inside a field as ""'))
                    break
                end = reader.line_num
                yield FeedRecord(f"{source}:{start}", b"", error=InvalidItem(
                    "bad_csv", f"{exc}: a quote inside a field is written as \"\", and the field is quoted"))
                continue
            end = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            where = f"{source}:{start}"
            raw = delimiter.join(row).encode()
            if len(row) != width:
                yield FeedRecord(where, raw, error=InvalidItem(
                    "bad_csv", f"{len(row)} fields where the header has {width} (separator {delimiter!r}): a "
                               "field with the separator in it must be quoted"))
                continue
            item: dict = {}
            for field, i in positions.items():
                value = row[i].strip()
                if value:
                    item[field] = value
            if "published_at" in item:
                item["published_at"] = to_rfc3339(item["published_at"]) or item["published_at"]
            item.setdefault("source", source)
            try:
                yield FeedRecord(where, raw, item=_checked(item, max_bytes))
            except InvalidItem as exc:
                yield FeedRecord(where, raw, error=exc)
    finally:
        text.detach()


# ---------------------------------------------------------------- RSS / Atom
class _TextOnly(HTMLParser):
    """Collects the text of an HTML fragment (feed summaries are often HTML)."""

    _BLOCK = {"p", "br", "div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        elif tag in self._BLOCK:
            self.parts.append(" ")

    def handle_endtag(self, tag) -> None:
        if tag in ("script", "style") and self._skip:
            self._skip -= 1

    def handle_data(self, data) -> None:
        if not self._skip:
            self.parts.append(data)


def html_to_text(fragment: str) -> str:
    """The visible text of an HTML fragment, whitespace collapsed."""
    if "<" not in fragment and "&" not in fragment:
        return " ".join(fragment.split())
    parser = _TextOnly()
    parser.feed(fragment)
    parser.close()
    return " ".join("".join(parser.parts).split())


def entry_key(entry: Mapping) -> str:
    """What identifies a feed entry for the poller: its guid/id, else its link, else its title."""
    return str(entry.get("id") or entry.get("link") or entry.get("title") or "")


def entry_to_item(entry: Mapping, feed: Mapping, fallback_source: str) -> dict:
    """A news item (not yet validated) from a feedparser entry and its feed's metadata.

    No ``id`` is set: the worker's rule (``derive_id``: the normalised url, else a content hash) gives
    the same id to the same story from any feed, file or API. The entry's guid is kept as ``guid``.
    """
    item: dict = {}
    title = html_to_text(entry.get("title") or "")
    if title:
        item["title"] = title
    body = ""
    for content in entry.get("content") or ():
        if content.get("value"):
            body = content["value"]
            break
    body = body or entry.get("summary") or entry.get("description") or ""
    text = html_to_text(body)
    if text and text != title:
        item["text"] = text
    if entry.get("link"):
        item["url"] = entry["link"]
    source = ((entry.get("source") or {}).get("title") or feed.get("title") or "").strip()
    if not source:
        link = feed.get("link") or entry.get("link") or ""
        source = urlsplit(link).hostname or fallback_source
    item["source"] = source
    published = _struct_to_rfc3339(entry.get("published_parsed") or entry.get("updated_parsed"))
    if published:
        item["published_at"] = published
    language = entry.get("language") or feed.get("language")
    if language:
        item["language"] = str(language)[:35]
    if entry.get("id"):
        item["guid"] = str(entry["id"])
    return item


def parse_feed_document(data: bytes, source: str):
    """Parse RSS/Atom bytes with feedparser; :class:`FeedError` when it is not a feed at all."""
    import feedparser

    parsed = feedparser.parse(data)
    if not parsed.entries and (parsed.bozo or not parsed.get("version")):
        why = parsed.get("bozo_exception") or "no RSS or Atom root element"
        raise FeedError(f"{source}: not an RSS or Atom feed ({why}); use --format jsonl, csv or text for other files")
    return parsed


def read_rss(data: bytes, source: str, max_bytes: int = 1024 * 1024) -> Iterator[FeedRecord]:
    """The entries of an RSS or Atom document as items."""
    parsed = parse_feed_document(data, source)
    for number, entry in enumerate(parsed.entries, 1):
        item = entry_to_item(entry, parsed.feed, source)
        where = f"{source}:entry {number}"
        raw = orjson.dumps(item)
        try:
            yield FeedRecord(where, raw, item=_checked(item, max_bytes))
        except InvalidItem as exc:
            yield FeedRecord(where, raw, error=exc)


def encode(item: dict) -> tuple[bytes, bytes]:
    """(key, value) of an item on ``news.raw``: keyed by its id so copies meet on one partition."""
    return item["id"].encode(), orjson.dumps(item)
