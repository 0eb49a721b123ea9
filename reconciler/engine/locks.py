"""Per-object serialization: one lock per (kind, name), shared by API requests and
reconcile passes in one engine, so a ``rm -f`` arriving during a pass waits for the
pass to finish making that object (never sees it half-made), and two requests on
different objects never wait for each other.

Locks are taken in one object at a time; an operation that needs two (a container
and its network) takes the container's only, as the network driver serializes its
own state in SQLite. So there is no lock order to get wrong and no deadlock.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator


class ObjectLocks:
    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[tuple[str, str], tuple[threading.RLock, int]] = {}

    @contextlib.contextmanager
    def hold(self, kind: str, name: str) -> Iterator[None]:
        """Hold the lock of ``kind/name`` (re-entrant within a thread)."""
        key = (kind, name)
        with self._guard:
            lock, users = self._locks.get(key, (threading.RLock(), 0))
            self._locks[key] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._guard:
                lock, users = self._locks[key]
                if users == 1:
                    del self._locks[key]  # no unbounded growth with many short-lived names
                else:
                    self._locks[key] = (lock, users - 1)
