"""Near-duplicate sketches: word and word-pair shingles, a MinHash signature (``rensa``), LSH bands.

A story's syndicated copies differ by a few words (a byline, a changed figure, a trimmed sentence). The
shingles are the distinct words *and* word pairs (bigrams) of the case- and space-folded text: a copy of
a 50-word story with three words replaced or dropped and a byline added keeps a Jaccard similarity of
~0.75 (a 1 KB story: ~0.9; bigrams alone ~0.7, word 3-grams ~0.6), while unrelated items stay below
~0.2 (they share words but few word pairs).

The signature is rensa's R-MinHash (Rust, MIT; ``BINS`` permutations, fixed seed so every worker and
every restart computes the same one): ~14 µs per 1 KB item on top of building the ~300 shingle strings,
against ~130 µs for the hand-written one-permutation MinHash it replaced (docs/architecture.md has the
numbers). Two signatures agree in a bin with probability ~ Jaccard, so the share of equal bins estimates
it. Each bin keeps the low 16 bits of its value: two different minima look equal with P = 2^-16, a
negligible bias, and a signature packs into 2 * BINS = 256 bytes.

For the index, the first ``BANDS * ROWS`` bins are cut into ``BANDS`` bands of ``ROWS`` bins; a story that
agrees with an item in at least ``MIN_BANDS`` bands becomes a candidate (with p = J^ROWS, P = 1 - (1-p)^20
- 20 p (1-p)^19: 0.9998 at J = 0.66, the least similar edited copy measured, 0.992 at J = 0.55, 0.93 at
J = 0.45, 0.11 at J = 0.2) and is confirmed on the whole signature (settings.near_dup_threshold, 0.45).
One band was enough before, but items written from common phrases share one band with many unrelated
stories (~8 confirmations per item on the bench's items), all on the serial story shard; two bands cut
that to the near copies. Two rows per band matter: with 4 rows x 16 bands a copy at J = 0.65 was missed
with P = 0.4 %, and among 100 copies of a short story one then became a second story in a sizeable share
of runs.
"""

from __future__ import annotations

import string
import struct
import sys
import unicodedata
import zlib
from array import array
from itertools import pairwise

from rensa import RMinHash

BINS = 128
ROWS = 2
BANDS = 20
MIN_BANDS = 2
"""Bands an item must share with a story to be compared with it (see the module docstring)."""
SEED = 20261124
"""rensa's permutation seed: fixed, so signatures stored or sent by one worker compare with another's."""
MAX_CHARS = 4000
"""Only the first characters of an item are sketched: bounded cost for a 1 MiB item, and copies agree
on their beginning."""
_PACK = struct.Struct(f"<{BINS}H")
PACKED_SIZE = _PACK.size


_PUNCTUATION = str.maketrans(dict.fromkeys(string.punctuation + "«»“”„‘’‚…–—•·", " "))


def fold(title: str, text: str) -> str:
    """The text that is sketched: NFKC, case-folded, punctuation dropped (a headline copied with a closing
    "." or ":" is the same seven words, not a word changed), words separated by single spaces, bounded
    length."""
    return " ".join(_spaced(title, text).split())[:MAX_CHARS]


def _spaced(title: str, text: str) -> str:
    """:func:`fold` before its spaces are made single and it is cut (never shorter than that)."""
    folded = unicodedata.normalize("NFKC", f"{title} {text}"[: MAX_CHARS * 2]).casefold()
    return folded.translate(_PUNCTUATION)


def shingles(title: str, text: str) -> list[str]:
    """The words and word pairs of :func:`fold` of an item's text (repeats included; the MinHash ignores
    them). The folded text is joined only when it has to be cut."""
    spaced = _spaced(title, text)
    words = spaced.split()
    if len(spaced) > MAX_CHARS and sum(map(len, words)) + len(words) - 1 > MAX_CHARS:
        words = " ".join(words)[:MAX_CHARS].split()
    words += list(map(" ".join, pairwise(words)))  # one string per pair; ~15% fewer instructions than an f-string
    return words


SHORT = 16
"""Texts with fewer shingles than this (about 8 words: a bare headline) are *short*."""
SHORT_THRESHOLD = 0.8
"""The similarity a short text needs to be a near-duplicate. In a few words one replaced word is a
different story as often as an edit: "Missile strike on Kharkiv" / "... on Odesa" share 5 of 9 shingles
(J = 0.56, over the default threshold, kept apart), while a word added to a 7-word headline still matches
(J = 0.87). Merging two events loses one; a missed syndicated headline costs at most a repeated alert,
which the cooldown holds back for the same category and actor. Limit: at 128 bins the estimate's
spread is about ±0.08 at J = 0.75, so a 7-word headline with one replaced place (J = 0.73) can still land
on either side."""


def threshold_for(shingle_count: int, threshold: float) -> float:
    """The near-duplicate threshold for a text with ``shingle_count`` shingles (0: unknown, the default)."""
    return max(threshold, SHORT_THRESHOLD) if 0 < shingle_count < SHORT else threshold


def signature(title: str, text: str) -> tuple[int, ...] | None:
    """The MinHash signature (``BINS`` 16-bit values) of an item's text, or None for an empty text."""
    packed = sketch(title, text)[0]
    return _PACK.unpack(packed) if packed is not None else None


def sketch(title: str, text: str) -> tuple[bytes | None, int]:
    """The packed MinHash signature (:func:`pack`) of an item's text (None for an empty text) and its
    number of distinct shingles (short texts need a higher similarity, :func:`threshold_for`)."""
    grams = shingles(title, text)
    if not grams:
        return None, 0
    distinct = set(grams)  # counted anyway; rensa then hashes each shingle once
    minhash = RMinHash(BINS, SEED)
    minhash.update(distinct)
    return _low_halves(minhash.digest()), len(distinct)


def _low_halves(values: list[int]) -> bytes:
    """The low 16 bits of each of rensa's 32-bit values, packed as :func:`pack` packs them, in C (a
    Python mask and ``struct`` pack of 128 values cost several times more)."""
    words = array("I", values)
    if sys.byteorder == "big":
        words.byteswap()
    return array("H", words.tobytes())[::2].tobytes()


def pack(sig: tuple[int, ...]) -> bytes:
    """The signature as 2 * BINS bytes (batch records, story records)."""
    return _PACK.pack(*sig)


_BAND_BITS = 30 - (BANDS - 1).bit_length()


_BAND_SPANS = [(b << _BAND_BITS, b * ROWS * 2, (b + 1) * ROWS * 2) for b in range(BANDS)]
_BAND_SHIFT = 32 - _BAND_BITS


def band_keys(packed: bytes) -> list[int]:
    """One 30-bit integer per band of a packed signature (:func:`pack`; a one-digit int, the smallest dict
    key): band number and a hash of its ``ROWS`` values. A hash collision only makes a false candidate
    (confirmed on the whole signature) or, first writer winning, hides one band of one story: rare at ~2^25
    keys per band."""
    crc32, shift = zlib.crc32, _BAND_SHIFT
    return [key | (crc32(packed[start:end]) >> shift) for key, start, end in _BAND_SPANS]


def as_int(sig: tuple[int, ...] | bytes) -> int:
    """A signature (or its packed bytes) as one integer, 16 bits per bin: :func:`agreement` compares two
    in five big-integer operations (~1 µs) instead of 128 Python comparisons (~5 µs)."""
    return int.from_bytes(sig if isinstance(sig, bytes) else _PACK.pack(*sig), "little")


_LOW15 = int.from_bytes(b"\xff\x7f" * BINS, "little")
_HIGH = int.from_bytes(b"\x00\x80" * BINS, "little")


def agreement(a: int, b: int) -> float:
    """The share of bins where two signatures (:func:`as_int`) agree: the estimated Jaccard similarity.
    A 16-bit lane of ``x = a ^ b`` is non-zero (a bin that differs) exactly when its top bit is set in
    ``x | ((x & 0x7fff) + 0x7fff)``; the sum stays inside its lane (at most 0xfffe), so five big-integer
    operations count all bins at once."""
    x = a ^ b
    return (BINS - ((x | ((x & _LOW15) + _LOW15)) & _HIGH).bit_count()) / BINS


def similarity(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    """Estimated Jaccard similarity: the share of bins where the two signatures agree."""
    return agreement(as_int(a), as_int(b))
