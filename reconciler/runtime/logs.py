"""Container logs in Docker's json-file format, size-capped with rotation.

One JSON object per line of output: ``{"log": "text\\n", "stream": "stdout",
"time": "2026-11-28T08:42:16.123456789Z"}``, the format ``docker logs`` and log
shippers already read. The writer runs in the container's monitor, so it is
standard library only and keeps nothing but a partial line per stream in memory.

Files: ``PATH`` is current, ``PATH.1`` the one before, up to ``PATH.{max_files-1}``.
"""

from __future__ import annotations

import json
import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

Stream = Literal["stdout", "stderr"]

DEFAULT_MAX_SIZE = 10 * 1024 * 1024
DEFAULT_MAX_FILES = 3


def timestamp(ns: int) -> str:
    """RFC 3339 with nanoseconds, UTC, as Docker writes it."""
    seconds, nanos = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{nanos:09d}Z"


def parse_timestamp(text: str) -> int:
    """Nanoseconds since the epoch from ``timestamp``'s format (or fewer digits)."""
    whole, _, rest = text.rstrip("Z").partition(".")
    seconds = int(datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp())
    return seconds * 1_000_000_000 + int((rest or "0").ljust(9, "0")[:9])


@dataclass(frozen=True)
class Entry:
    stream: Stream
    time_ns: int
    text: str  # with its newline, unless the process exited mid-line


class LogWriter:
    """Append-only writer; call ``write`` with whatever the pipes deliver.

    Lines are written whole: a chunk ending mid-line is held until its newline
    arrives, or until ``close`` (Docker writes such a last partial line as is).
    """

    def __init__(self, path: str, *, max_size: int = DEFAULT_MAX_SIZE, max_files: int = DEFAULT_MAX_FILES) -> None:
        if max_files < 1 or max_size < 1:
            raise ValueError("max_size and max_files must be at least 1")
        self.path = path
        self.max_size = max_size
        self.max_files = max_files
        self._partial: dict[str, bytes] = {"stdout": b"", "stderr": b""}
        self._file = open(path, "ab")  # noqa: SIM115 - held open for the container's life
        self._size = self._file.tell()

    def write(self, stream: Stream, data: bytes, *, now_ns: int | None = None) -> None:
        buffered = self._partial[stream] + data
        *lines, rest = buffered.split(b"\n")
        self._partial[stream] = rest
        stamp = timestamp(now_ns if now_ns is not None else time.time_ns())
        for line in lines:
            self._record(stream, line + b"\n", stamp)

    def _record(self, stream: str, line: bytes, stamp: str) -> None:
        record = json.dumps({"log": line.decode("utf-8", "replace"), "stream": stream, "time": stamp})
        encoded = record.encode() + b"\n"
        if self._size and self._size + len(encoded) > self.max_size:
            self._rotate()
        self._file.write(encoded)
        self._file.flush()
        self._size += len(encoded)

    def _rotate(self) -> None:
        self._file.close()
        if self.max_files == 1:
            os.truncate(self.path, 0)
        else:
            for index in range(self.max_files - 1, 0, -1):
                source = self.path if index == 1 else f"{self.path}.{index - 1}"
                if os.path.exists(source):
                    os.replace(source, f"{self.path}.{index}")
        self._file = open(self.path, "ab")  # noqa: SIM115
        self._size = 0

    def close(self, *, now_ns: int | None = None) -> None:
        stamp = timestamp(now_ns if now_ns is not None else time.time_ns())
        for stream, rest in self._partial.items():
            if rest:
                self._record(stream, rest, stamp)
        self._partial = {"stdout": b"", "stderr": b""}
        self._file.close()


def _files(path: str) -> list[str]:
    """Oldest first."""
    rotated = []
    index = 1
    while os.path.exists(f"{path}.{index}"):
        rotated.append(f"{path}.{index}")
        index += 1
    return [*reversed(rotated), *([path] if os.path.exists(path) else [])]


def _parse(line: bytes) -> Entry | None:
    try:
        record = json.loads(line)
        return Entry(stream=record["stream"], time_ns=parse_timestamp(record["time"]), text=record["log"])
    except (ValueError, KeyError, TypeError):
        return None  # a line cut by a crash mid-write: skip it, as Docker does


def read_file(name: str, since_ns: int | None = None) -> Iterator[Entry]:
    with open(name, "rb") as handle:
        for line in handle:
            entry = _parse(line)
            if entry is not None and (since_ns is None or entry.time_ns >= since_ns):
                yield entry


def read(path: str, *, tail: int | None = None, since_ns: int | None = None) -> list[Entry]:
    """Entries of all files, oldest first; the last ``tail`` of those at or after ``since_ns``."""
    if tail == 0:
        return []
    out: deque[Entry] = deque(maxlen=tail)
    for name in _files(path):
        out.extend(read_file(name, since_ns))
    return list(out)


def follow(
    path: str,
    *,
    tail: int | None = None,
    since_ns: int | None = None,
    stop: Callable[[], bool],
    poll_seconds: float = 0.1,
) -> Iterator[Entry]:
    """What ``read`` returns, then new entries as they are written, until ``stop()``
    is true and nothing more is left.

    The current file is opened first and its history read through the same handle,
    so no line written meanwhile is missed. Rotation is followed: when the current
    file is replaced, the rest of the old one has been read before the new one is.
    """
    handle = open(path, "rb")  # noqa: SIM115 - held across yields, closed in finally
    inode = os.fstat(handle.fileno()).st_ino
    pending = b""

    def fresh() -> list[Entry]:
        nonlocal pending
        pending += handle.read()
        *lines, pending = pending.split(b"\n")
        parsed = (_parse(line) for line in lines)
        return [e for e in parsed if e is not None and (since_ns is None or e.time_ns >= since_ns)]

    try:
        history = [e for name in _files(path)[:-1] for e in read_file(name, since_ns)] + fresh()
        if tail is not None:
            history = history[len(history) - tail :] if tail > 0 else []
        yield from history
        while True:
            entries = fresh()
            if entries:
                yield from entries
                continue
            try:
                rotated = os.stat(path).st_ino != inode
            except FileNotFoundError:
                rotated = False
            if rotated:
                handle.close()
                handle = open(path, "rb")  # noqa: SIM115
                inode = os.fstat(handle.fileno()).st_ino
                pending = b""
                continue
            if stop():
                return
            time.sleep(poll_seconds)
    finally:
        handle.close()
