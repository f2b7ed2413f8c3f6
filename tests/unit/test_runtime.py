"""The worker's runtime tuning (streams.cli.processes.tune_runtime), checked in fresh processes."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

HEAP_OR_MAPPING = """
import ctypes, sys

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
if sys.argv[1] == "tuned":
    from streams.cli.processes import tune_runtime
    tune_runtime()
big = bytearray(4 << 20)  # a record larger than any before, then freed: glibc's threshold rises past it
del big
before = libc.mallinfo2().hblks
held = bytearray(1 << 20)  # a ~1 MB news.processed record
print(libc.mallinfo2().hblks - before)
"""


def mapped_blocks(mode: str) -> int:
    done = subprocess.run([sys.executable, "-c", HEAP_OR_MAPPING, mode], cwd=REPO, capture_output=True, text=True,
                          timeout=60)
    if done.returncode and "mallinfo2" in done.stderr:
        pytest.skip("not glibc >= 2.33")
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


def test_a_large_block_keeps_its_own_mapping_after_a_larger_one_was_freed():
    """With glibc's rising threshold a ~1 MB block comes from the heap once a larger one was freed (and the
    heap's RSS stays); tuned, it is mapped on its own and returned when freed."""
    assert mapped_blocks("default") == 0
    assert mapped_blocks("tuned") == 1
