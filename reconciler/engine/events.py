"""Events: reading the reconcile loop's log, ``ROOT/events.jsonl`` (written by
``control.events.append``; one JSON object per line, appended atomically).

Standard library only."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, cast

from reconciler.control.events import path

if TYPE_CHECKING:
    from reconciler.engine.core import Engine
    from reconciler.engine.models.events import Event

#: Seconds between looks at the log while following it.
POLL = 0.2


class Events:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def list(self, *, since: float | None = None) -> list[Event]:
        """The events so far (at or after ``since``, seconds since the epoch)."""
        return read(self.engine.config.root, since=since)

    def follow(self, *, since: float | None = None) -> Iterator[Event]:
        """The events so far, then each one as it is appended; never ends by itself
        (a consumer closes the iterator)."""
        return follow(self.engine.config.root, since=since, stop=lambda: False)


def _parse(line: str) -> Event | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None  # a line cut by a crash mid-write
    return cast("Event", record) if isinstance(record, dict) and "event" in record else None


def read(root: str, *, since: float | None = None) -> list[Event]:
    try:
        with open(path(root)) as handle:
            lines = handle.readlines()
    except FileNotFoundError:
        return []
    found: list[Event] = []
    for line in lines:
        record = _parse(line)
        if record is not None and (since is None or float(record.get("time", 0)) >= since):
            found.append(record)
    return found


def follow(root: str, *, since: float | None, stop: Callable[[], bool]) -> Iterator[Event]:
    """The events so far, then each new one as it is appended, until ``stop()``.
    The log is read from one offset on, so nothing appended while the reader is
    busy is missed; a line still being written waits for its newline."""
    offset = 0
    while True:
        try:
            with open(path(root), "rb") as handle:
                if os.fstat(handle.fileno()).st_size < offset:  # replaced (rotated by hand): from its start
                    offset = 0
                handle.seek(offset)
                chunk = handle.read()
        except FileNotFoundError:
            chunk = b""
        complete = chunk[: chunk.rfind(b"\n") + 1]
        offset += len(complete)
        for line in complete.decode(errors="replace").splitlines():
            record = _parse(line)
            if record is not None and (since is None or float(record.get("time", 0)) >= since):
                yield record
        if stop():
            return
        time.sleep(POLL)
