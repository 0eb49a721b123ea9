"""The container listing of a long-lived engine, kept between requests.

``ps`` through the agent is asked many times a second (dashboards, scripts,
``watch``, ten clients at once). Building it reads every state file and asks the
kernel about every running container: 20-30 ms for 300 containers. Between two
listings almost nothing changes, and what can change is cheap to detect:

- a state file is replaced on every write, so its (inode, mtime, size) key changes
  (``StateStore.keys``: one ``stat`` each); a key written within the clock's
  granularity (``state.FRESH_NS``) is not trusted, as the store's own cache does;
- a running container's process can end before anyone writes its state (its monitor
  writes a moment later; if the monitor died too, the listing records it): pidfds
  watched in one ``poll`` tell (``runtime.pidwatch``).

When neither happened, the summaries built last time are the answer. Each caller
gets its own copies of the rows (their lists and dicts are shared: read-only).
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from reconciler.engine.container_view import summary
from reconciler.engine.models.keyed import KeyedList
from reconciler.runtime.state import FRESH_NS

if TYPE_CHECKING:
    from reconciler.engine.models.containers import ContainerSummary
    from reconciler.runtime.containers import Runtime
    from reconciler.runtime.pidwatch import ProcessWatch

Keys = list[tuple[str, tuple[int, int, int]]]


class Listing:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: Keys | None = None
        self._rows: list[ContainerSummary] = []
        self._running: list[tuple[int, int]] = []
        self._watch: ProcessWatch | None = None
        self._generation = 0  # one more at every rebuild: the rows' cache_key

    def rows(self, runtime: Runtime) -> KeyedList[ContainerSummary]:
        """Every container's summary, by name (new dicts, shared values); its
        ``cache_key`` is the same while the listing is (None when it cannot be kept)."""
        keys = runtime.store.keys()
        with self._lock:
            if keys == self._keys and not self._ended():
                return KeyedList((row.copy() for row in self._rows), cache_key=self._generation)
        states = runtime.containers()  # checked against the kernel, and corrected
        rows = [summary(state) for state in states]
        running = [(s.pid, s.pid_start) for s in states if s.status in ("running", "paused") and s.pid]
        after = runtime.store.keys()
        fresh = time.time_ns() - FRESH_NS
        with self._lock:
            # kept only if nothing changed while the states were read: the keys taken
            # before and after agree, and name the containers read. (Before alone is not
            # enough: a container made during the read and removed later brings the
            # keys back to what they were, and the kept rows would still show it.)
            trusted = (
                after == keys
                and [name for name, _key in keys] == [state.name for state in states]
                and all(key[1] < fresh for _name, key in keys)
            )
            self._keys = keys if trusted else None
            self._rows, self._running = rows, running
            self._generation += 1
            generation = self._generation if trusted else None
        return KeyedList((row.copy() for row in rows), cache_key=generation)

    def _ended(self) -> bool:
        if not self._running:
            return False
        if self._watch is None:  # opened on the second listing: a one-shot CLI never pays for it
            from reconciler.runtime.pidwatch import ProcessWatch

            self._watch = ProcessWatch()
        return bool(self._watch.ended(self._running))

    def close(self) -> None:
        with self._lock:
            if self._watch is not None:
                self._watch.close()
                self._watch = None
