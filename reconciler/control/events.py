"""The append-only event log: ``ROOT/events.jsonl``, one JSON object per line, for
every object's outcome in a pass and every pass of the agent. Appends of one line
are atomic (O_APPEND, one write), so passes and the agent never interleave lines.
Standard library only."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator


def path(root: str) -> str:
    return os.path.join(root, "events.jsonl")


def append(root: str, event: str, **fields: object) -> None:
    record = {"time": time.time(), "event": event, **fields}
    os.makedirs(root, exist_ok=True)
    fd = os.open(path(root), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(record, sort_keys=True) + "\n").encode())
    finally:
        os.close(fd)


def read(root: str, *, since: float | None = None) -> list[dict[str, object]]:
    try:
        with open(path(root)) as handle:
            lines = handle.readlines()
    except FileNotFoundError:
        return []
    out = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line cut by a crash mid-write
        if since is None or float(record.get("time", 0)) >= since:
            out.append(record)
    return out


def follow(root: str, *, since: float | None, stop: Callable[[], bool]) -> Iterator[dict[str, object]]:
    """The events so far, then each new one as it is appended, until ``stop()``."""
    yield from read(root, since=since)
    try:
        offset = os.path.getsize(path(root))
    except FileNotFoundError:
        offset = 0
    while not stop():
        try:
            size = os.path.getsize(path(root))
        except FileNotFoundError:
            size = 0
        if size > offset:
            with open(path(root)) as handle:
                handle.seek(offset)
                chunk = handle.read()
            complete = chunk[: chunk.rfind("\n") + 1]
            offset += len(complete.encode())
            for line in complete.splitlines():
                try:
                    yield json.loads(line)
                except ValueError:
                    continue
        time.sleep(0.2)
