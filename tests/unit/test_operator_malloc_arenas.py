"""The operator's C heap in few arenas: glibc's own count of its arenas, in a fresh process
whose threads each allocate outside Python's small-object allocator, with and without the
limit the operator sets before its threads start."""

from __future__ import annotations

import subprocess
import sys

from mlcycle.__main__ import MALLOC_ARENAS

THREADS = 6
# malloc_stats() writes one "Arena N:" block per arena to stderr. Each thread keeps an
# allocation past Python's small-object limit (512 bytes), which glibc serves, until every
# thread has made one: no thread's arena is freed for the next one to take over.
PROGRAM = f"""
import ctypes, sys, threading
from mlcycle.__main__ import limit_malloc_arenas
if sys.argv[1] == "limited":
    assert limit_malloc_arenas({MALLOC_ARENAS})
barrier = threading.Barrier({THREADS})
def allocate():
    kept = bytearray(64 * 1024)
    barrier.wait()
threads = [threading.Thread(target=allocate) for _ in range({THREADS})]
for thread in threads: thread.start()
for thread in threads: thread.join()
ctypes.CDLL(None).malloc_stats()
"""


def arenas(mode: str) -> int:
    finished = subprocess.run([sys.executable, "-c", PROGRAM, mode], capture_output=True,
                              text=True, timeout=60, check=True)
    return sum(1 for line in finished.stderr.splitlines() if line.startswith("Arena "))


def test_the_operator_s_threads_share_at_most_malloc_arenas() -> None:
    assert arenas("limited") <= MALLOC_ARENAS


def test_without_the_limit_each_thread_takes_an_arena_of_its_own() -> None:
    """The limit is what makes the difference: the same threads, no limit, more arenas."""
    assert arenas("default") > MALLOC_ARENAS
