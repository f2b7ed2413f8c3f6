"""Reading feed files into news items: JSONL and plain text (one item a line).

Every reader yields :class:`FeedRecord` values — an item ready to send or the reason it was rejected —
so ``push`` and ``classify`` treat every format alike.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import orjson

from streams.records import InvalidItem, parse_item, validate_item

SAMPLE_FEED = Path(__file__).resolve().parent / "data" / "sample_feed.jsonl"


@dataclass
class FeedRecord:
    """One line of a feed: a valid ``item`` or an ``error`` (an :class:`InvalidItem`), with where it was."""

    where: str
    raw: bytes
    item: dict | None = None
    error: InvalidItem | None = None


def _open(path: str) -> BinaryIO:
    if path == "-":
        return sys.stdin.buffer
    return open(path, "rb")


def detect_format(path: str, first_line: bytes) -> str:
    """``jsonl`` or ``text``, from the file name, else from the first line."""
    suffix = Path(path).suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if suffix in (".txt", ".text"):
        return "text"
    return "jsonl" if first_line.lstrip().startswith(b"{") else "text"


def read_feed(path: str, fmt: str = "auto", max_bytes: int = 1024 * 1024) -> Iterator[FeedRecord]:
    """Yield one :class:`FeedRecord` per non-blank line of a JSONL or text file (``-`` is stdin)."""
    source = "stdin" if path == "-" else Path(path).name
    with _open(path) as handle:
        for number, line in enumerate(handle, 1):
            raw = line.rstrip(b"\r\n")
            if not raw.strip():
                continue
            if fmt == "auto":
                fmt = detect_format(path, raw)
            where = f"{source}:{number}"
            try:
                if fmt == "jsonl":
                    item = parse_item(raw, max_bytes)
                else:
                    text = raw.decode("utf-8", errors="strict")
                    item = validate_item({"text": text, "source": source})
                yield FeedRecord(where, raw, item=item)
            except InvalidItem as exc:
                yield FeedRecord(where, raw, error=exc)
            except UnicodeDecodeError as exc:
                yield FeedRecord(where, raw, error=InvalidItem("bad_utf8", f"not valid UTF-8 at byte {exc.start}"))


def encode(item: dict) -> tuple[bytes, bytes]:
    """(key, value) of an item on ``news.raw``: keyed by its id so copies meet on one partition."""
    return item["id"].encode(), orjson.dumps(item)
