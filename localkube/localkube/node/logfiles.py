"""Container log files in the CRI format, and the reads `kubectl logs` needs.

Each line of a file is `<RFC3339Nano> <stream> <F|P> <content>`: `F` ends a line,
`P` is a piece of a longer line (or an unterminated last line). Pure functions
plus small file reads; no knowledge of pods.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .clock import parse_rfc3339


@dataclass(frozen=True)
class Record:
    timestamp: str
    stream: str
    full: bool
    content: bytes

    @classmethod
    def parse(cls, raw: bytes) -> Record | None:
        parts = raw.rstrip(b"\n").split(b" ", 3)
        if len(parts) < 3:
            return None
        content = parts[3] if len(parts) == 4 else b""
        return cls(parts[0].decode(), parts[1].decode(), parts[2] == b"F", content)

    def render(self, timestamps: bool, continuing: bool = False) -> bytes:
        """Bytes for the reader; timestamps prefix only the start of a line."""
        prefix = b"" if not timestamps or continuing else self.timestamp.encode() + b" "
        return prefix + self.content + (b"\n" if self.full else b"")


def read_records(path: Path, offset: int = 0) -> tuple[list[Record], int]:
    """Complete records from byte `offset`; returns them and the next offset."""
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            data = fh.read()
    except OSError:
        return [], offset
    end = data.rfind(b"\n")
    if end < 0:
        return [], offset
    records = []
    for raw in data[: end + 1].split(b"\n")[:-1]:
        rec = Record.parse(raw)
        if rec is not None:
            records.append(rec)
    return records, offset + end + 1


def tail_lines(records: list[Record], lines: int) -> list[Record]:
    """The records making up the last `lines` logical lines."""
    if lines < 0:
        return records
    if lines == 0:
        return []
    groups: list[list[Record]] = []
    current: list[Record] = []
    for rec in records:
        current.append(rec)
        if rec.full:
            groups.append(current)
            current = []
    if current:
        groups.append(current)
    return [rec for group in groups[-lines:] for rec in group]


def since(records: list[Record], epoch: float) -> list[Record]:
    return [r for r in records if _ts(r) >= epoch]


def _ts(record: Record) -> float:
    try:
        return parse_rfc3339(record.timestamp)
    except ValueError:
        return 0.0


def render(records: list[Record], timestamps: bool, continuing: bool = False) -> tuple[bytes, bool]:
    """Rendered bytes, and whether the last record left a line open."""
    out = []
    for rec in records:
        out.append(rec.render(timestamps, continuing))
        continuing = not rec.full
    return b"".join(out), continuing


def tail_text(path: Path, *, max_lines: int, max_bytes: int) -> str:
    """The end of a log as text (FallbackToLogsOnError termination messages)."""
    records, _ = read_records(path)
    data, _ = render(tail_lines(records, max_lines), timestamps=False)
    return data[-max_bytes:].decode("utf-8", "replace")


def instance_logs(container_dir: Path) -> list[tuple[int, Path]]:
    """Log files of a container's instances, oldest first."""
    out = []
    for path in container_dir.glob("*.log"):
        if path.stem.isdigit():
            out.append((int(path.stem), path))
    return sorted(out)
