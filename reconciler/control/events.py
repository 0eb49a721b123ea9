"""The append-only event log: ``ROOT/events.jsonl``, one JSON object per line, for
every object's outcome in a pass and every pass of the agent. Appends of one line
are atomic (O_APPEND, one write), so passes and the agent never interleave lines.
This is the writing side; ``engine.events`` reads and follows the log. Standard
library only."""

from __future__ import annotations

import json
import os
import time


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
