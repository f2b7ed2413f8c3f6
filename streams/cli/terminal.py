"""Text from items made safe for a terminal: no escape sequences, control characters or bidi overrides.

A title is written by whoever wrote the feed; printed as is, ``ESC ] 0 ; … BEL`` sets the window title,
``ESC [ 2 J`` clears the screen, ``ESC [ 32 m`` paints a fake green line, U+202E turns text around. Every
CLI printer passes item-derived text through :func:`printable` (or :func:`json_line`, which keeps the
data and escapes the same characters); colour comes only from our own ``click.style``.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

_BIDI = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
"""Bidi marks, embeddings, overrides and isolates."""

UNSAFE = re.compile(
    r"\x1b(?:\[[0-?]*[ -/]*[@-~]?"            # CSI: ESC [ params intermediates final
    r"|[\]PX^_][^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"  # OSC, DCS, SOS, PM, APC: up to their terminator
    r"|[ -/]*[0-~]?)"                         # any other ESC sequence (ESC ( B, ESC c, …)
    r"|\x9b[0-?]*[ -/]*[@-~]?"                # 8-bit CSI
    r"|[\x9d\x90\x98\x9e\x9f][^\x07\x1b\x9c]*(?:\x07|\x9c)?"  # 8-bit OSC, DCS, SOS, PM, APC
    r"|[\x00-\x08\x0e-\x1f\x7f-\x9f]"         # the other C0 controls (not \t \n \v \f \r), DEL, C1
    rf"|[{_BIDI}]"
)
"""What a terminal may act on rather than show."""


def printable(text: Any) -> str:
    """``text`` as one line a terminal shows as is: :data:`UNSAFE` removed, whitespace runs (tabs, line
    breaks) made one space."""
    return " ".join(UNSAFE.sub("", str(text)).split())


def json_line(value: Any) -> str:
    """``value`` as one line of JSON with :data:`UNSAFE` characters escaped (``\\u001b``): the same data
    for a program, nothing a terminal acts on."""
    text = orjson.dumps(value).decode()  # escapes C0 already
    return _UNESCAPED.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


_UNESCAPED = re.compile(rf"[\x7f-\x9f{_BIDI}]")
"""The characters of :data:`UNSAFE` that JSON encoders leave as they are (DEL, C1, bidi)."""
