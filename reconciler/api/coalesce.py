"""Concurrent identical reads share one computation, without breaking read-your-writes.

A request may share only a computation that *started after it arrived*: whatever
its client did before sending it (a create that was answered) is then seen. So per
key at most one computation runs; requests arriving while it runs do not join it,
they wait for it to end and then share ONE next computation, started after all of
them arrived. Ten clients listing 300 containers cost two listings at a time
instead of ten fighting over the GIL.

Runs on the event loop: no locks, every change of a slot happens between awaits.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Any


class _Slot:
    __slots__ = ("queued", "queued_compute", "running")

    def __init__(self) -> None:
        #: the computation under way (its result, when it has one)
        self.running: asyncio.Future[Any] | None = None
        #: the next one, to start when ``running`` ends; shared by everyone who came meanwhile
        self.queued: asyncio.Future[Any] | None = None
        self.queued_compute: Callable[[], Awaitable[Any]] | None = None


class Coalescer:
    def __init__(self) -> None:
        self._slots: dict[Hashable, _Slot] = {}

    async def run(self, key: Hashable, compute: Callable[[], Awaitable[Any]]) -> Any:
        """``compute()``'s result, from a call of it started after this call began
        (shared with the other calls of ``key`` waiting for the same one)."""
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = _Slot()
        if slot.running is None:
            future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self._launch(key, slot, compute, future)
        elif slot.queued is None:
            future = slot.queued = asyncio.get_running_loop().create_future()
            slot.queued_compute = compute
        else:
            future = slot.queued
        # a caller that goes away (its client disconnected) leaves the others theirs
        return await asyncio.shield(future)

    def _launch(
        self, key: Hashable, slot: _Slot, compute: Callable[[], Awaitable[Any]], future: asyncio.Future[Any]
    ) -> None:
        slot.running = future
        future.add_done_callback(_retrieved)
        task = asyncio.ensure_future(compute())

        def finished(task: asyncio.Future[Any]) -> None:
            if task.cancelled():
                future.cancel()
            elif task.exception() is not None:
                future.set_exception(task.exception())  # type: ignore[arg-type]
            else:
                future.set_result(task.result())
            slot.running = None
            if slot.queued is not None:
                queued, compute_next = slot.queued, slot.queued_compute
                slot.queued = slot.queued_compute = None
                assert compute_next is not None
                self._launch(key, slot, compute_next, queued)
            else:
                del self._slots[key]

        task.add_done_callback(finished)


def _retrieved(future: asyncio.Future[Any]) -> None:
    """Marks an exception as seen: every waiter may have gone."""
    if not future.cancelled():
        future.exception()
