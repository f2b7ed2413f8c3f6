"""What the story shard's unit tests feed it: entries made by the process stage's own function and read
back through the news.processed wire format, and the changelogs as a dict the shard's flushes update."""

from __future__ import annotations

import time

import orjson

from streams.analytics.shard import Changes, Entry, batch_records, read_batch
from streams.processing import process_item
from streams.records import now_iso
from streams.settings import Settings


def entry(tagger, item: dict, settings: Settings | None = None) -> Entry:
    """What the process stage sends for ``item``, through the wire format."""
    made = process_item(orjson.dumps(item), settings or Settings(), tagger, now_iso(), time.time())
    return read_batch(batch_records([made.wire()])[0])[0]


def keep(stored: dict, changes: Changes) -> None:
    """Apply flushed changes to ``stored`` (``{"stories": {}, "cooldown": {}, "windows": {}}``) as the
    changelog topics would hold them."""
    for name, changed in (("stories", changes.stories), ("cooldown", changes.cooldown),
                          ("windows", changes.windows)):
        for key, value in changed.items():
            if value is None:
                stored[name].pop(key, None)
            else:
                stored[name][key] = value
