"""``GET /containers/json``'s rows kept between requests, as the native listing is
(``engine.container_listing``).

Building them reads every container's state and Docker record (``docker.json``
beside it): about 50 ms for 300 containers, which ten docker SDK clients polling at
once turn into seconds. The rows are kept while the engine's own listing keeps its
``cache_key`` (no state file changed, no running process ended) and no Docker record
changed (one ``stat`` each). ``Status`` ("Up 3 minutes") moves with the clock: it is
written into each answer, and an answer's JSON is reused within the same second only.
"""

from __future__ import annotations

import json
import os
import threading
import time
import weakref
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any

from reconciler.dockerapi import store, views
from reconciler.runtime.state import FRESH_NS

if TYPE_CHECKING:
    from reconciler.engine.core import Engine
    from reconciler.runtime.state import ContainerState

Pairs = list[tuple["ContainerState", dict[str, Any]]]


class Listing:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: Hashable | None = None
        self._pairs: Pairs = []
        self._texts: dict[Hashable, bytes] = {}

    def pairs(self, engine: Engine) -> tuple[Hashable | None, Pairs]:
        """(a key equal while the rows are, or None; every container's state and row,
        newest first). The rows are shared: read them, do not change them."""
        native = engine.containers.list(all=True)
        key = _key(engine, native)
        with self._lock:
            if key is not None and key == self._key:
                return key, self._pairs
        states = sorted(store.states(engine), key=lambda s: s.created_at, reverse=True)
        pairs = [(state, views.summary(state, store.sidecar(engine, state.name), engine)) for state in states]
        with self._lock:
            self._key, self._pairs, self._texts = key, pairs, {}
        return key, pairs

    def text(self, key: Hashable, make: Any) -> bytes:
        """The JSON of an answer for ``key`` (the rows' key, the request, the second),
        made by ``make()`` once."""
        with self._lock:
            kept = self._texts.get(key)
        if kept is not None:
            return kept
        text: bytes = make()
        with self._lock:
            if len(self._texts) > 64:
                self._texts.clear()
            self._texts[key] = text
        return text


def _key(engine: Engine, native: Any) -> Hashable | None:
    native_key = getattr(native, "cache_key", None)
    if native_key is None:
        return None
    stamps: list[tuple[int, int, int] | None] = []
    fresh = time.time_ns() - FRESH_NS
    for row in native:
        try:
            info = os.stat(store.runtime(engine).store.path(row["name"], store.SIDECAR))
        except OSError:
            stamps.append(None)
            continue
        if info.st_mtime_ns > fresh:
            return None  # written within the clock's granularity: not to be trusted yet
        stamps.append((info.st_ino, info.st_mtime_ns, info.st_size))
    return (native_key, tuple(stamps))


_LISTINGS: weakref.WeakKeyDictionary[Engine, Listing] = weakref.WeakKeyDictionary()
_GUARD = threading.Lock()


def listing_of(engine: Engine) -> Listing:
    with _GUARD:
        found = _LISTINGS.get(engine)
        if found is None:
            found = _LISTINGS[engine] = Listing()
        return found


def answer(rows: list[dict[str, Any]], states: list[ContainerState]) -> bytes:
    """The rows as sent: each with its ``Status`` as of now."""
    out = []
    for row, state in zip(rows, states, strict=True):
        copy = dict(row)
        copy["Status"] = views.status_text(state)
        out.append(copy)
    return json.dumps(out).encode()
