"""The worker's runtime tuning (streams.cli.processes.tune_runtime), checked in fresh processes."""

import ctypes
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

FRAGMENTED_HEAP = """
import ctypes, sys, time

def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20

if sys.argv[1] == "tuned":
    from streams.cli import processes
    processes.TRIM_EVERY = 0.05
    processes.tune_runtime()
big = bytearray(4 << 20)  # a block larger than any before, then freed: glibc's mmap threshold rises past 1 MB
del big
records, kept = [], []
for _ in range(64):  # ~1 MB records with a small long-lived object after each, as a worker allocates them
    records.append(bytearray(1 << 20))
    records[-1][::4096] = b"x" * 256  # touched: resident
    kept.append(bytearray(2000))
full = rss_mb()
del records
time.sleep(0.5)
print(full - rss_mb())
"""


def has_malloc_trim() -> bool:
    try:
        ctypes.CDLL("libc.so.6").malloc_trim  # noqa: B018 - only whether it is there
    except (OSError, AttributeError):
        return False
    return True


def freed_mb(mode: str) -> float:
    done = subprocess.run([sys.executable, "-c", FRAGMENTED_HEAP, mode], cwd=REPO, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return float(done.stdout)


@pytest.mark.skipif(not has_malloc_trim(), reason="no glibc here: tune_runtime trims nothing on another C library")
def test_the_heap_between_long_lived_objects_goes_back_to_the_system():
    """64 MB of ~1 MB records, freed with a small object kept after each: glibc keeps the free heap pages
    (only its top could shrink), the tuned worker trims them within its trim interval."""
    assert freed_mb("default") < 8
    assert freed_mb("tuned") > 48
