"""Resident memory of a process tree, sampled from /proc (no psutil).

The tree is the server's process and every descendant (MLflow's CLI starts uvicorn
as a child). Its RSS is the sum over the tree's processes, as `ps` shows them.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def children(pid: int) -> list[int]:
    """Direct children of `pid` (all its threads'); empty once it is gone."""
    found: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return found
    for task in tasks:
        try:
            found.extend(int(c) for c in (task / "children").read_text().split())
        except OSError:
            continue
    return found


def tree(pid: int) -> list[int]:
    """`pid` and its descendants."""
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        todo.extend(children(current))
    return pids


def rss_bytes(pid: int) -> int:
    """Resident set size of one process; 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/statm").read_text().split()
    except OSError:
        return 0
    return int(fields[1]) * PAGE_SIZE


def tree_rss_bytes(pid: int) -> int:
    return sum(rss_bytes(p) for p in tree(pid))


class PeakRss:
    """A thread sampling a tree's RSS every `interval` seconds, keeping the peaks:
    over the whole life (`overall`) and since the last `window_peak()` call."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        self.pid = pid
        self.interval = interval
        self.overall = 0
        self._window = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def sample(self) -> None:
        rss = tree_rss_bytes(self.pid)
        with self._lock:
            self.overall = max(self.overall, rss)
            self._window = max(self._window, rss)

    def window_peak(self) -> int:
        """Peak since the previous call (samples once more first), then start anew."""
        self.sample()
        with self._lock:
            peak, self._window = self._window, 0
        return peak

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()
