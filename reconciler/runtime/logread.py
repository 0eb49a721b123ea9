"""Reading container logs written by ``logs.LogWriter``: all files oldest first,
``tail``, ``since`` and ``follow`` across rotations. Used by the engine and the CLI,
never by the monitor, so it may import what it likes.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from reconciler.runtime.logs import Stream


def parse_timestamp(text: str) -> int:
    """Nanoseconds since the epoch from ``timestamp``'s format (or fewer digits)."""
    from datetime import UTC, datetime

    whole, _, rest = text.rstrip("Z").partition(".")
    seconds = int(datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp())
    return seconds * 1_000_000_000 + int((rest or "0").ljust(9, "0")[:9])


class Entry(NamedTuple):
    stream: Stream
    time_ns: int
    text: str  # with its newline, unless the process exited mid-line


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
    from collections import deque

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
                try:
                    replacement = open(path, "rb")  # noqa: SIM115 - becomes the handle below
                except FileNotFoundError:  # the writer is between its rename and making the new file
                    time.sleep(poll_seconds)
                    continue
                rest = fresh()  # what the old file got after our last read, before its rename
                handle.close()
                handle = replacement
                inode = os.fstat(handle.fileno()).st_ino
                pending = b""
                yield from rest
                continue
            if stop():
                return
            time.sleep(poll_seconds)
    finally:
        handle.close()
