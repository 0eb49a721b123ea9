"""Containers' exits heard as they happen, so ``docker run`` does not wait on polls.

A container's process is watched through a pidfd (readable once it has exited; it
is no child of ours, its monitor is its parent); its monitor records the exit a
moment later. Handlers that wait for a change of a container (its start, exit or
removal) await ``changed`` and are woken by ``notify``, with a poll as a fallback
(a change made by another client of the engine is seen at the next poll)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading

from reconciler.dockerapi.context import DockerContext

#: How often a waiter looks again between notifications.
FALLBACK_POLL = 0.05
#: How often a waiter looks while an exit is being recorded.
SETTLE_POLL = 0.005


class Exits:
    def __init__(self) -> None:
        self._watched: dict[str, tuple[int, threading.Event]] = {}
        self._waiters: dict[str, set[asyncio.Future[None]]] = {}

    def watch(self, name: str, pid: int) -> threading.Event:
        """Set once process ``pid`` (``name``'s) has exited; set at once if it has."""
        current = self._watched.get(name)
        if current is not None and current[0] == pid:
            return current[1]
        event = threading.Event()
        try:
            fd = os.pidfd_open(pid)
        except OSError:
            event.set()
            return event
        self._watched[name] = (pid, event)
        loop = asyncio.get_running_loop()

        def exited() -> None:
            loop.remove_reader(fd)
            os.close(fd)
            event.set()
            if self._watched.get(name, (0, None))[1] is event:
                del self._watched[name]
            self.notify(name)

        loop.add_reader(fd, exited)
        return event

    def notify(self, name: str) -> None:
        """Wake whoever waits for a change of ``name``."""
        for future in self._waiters.pop(name, set()):
            if not future.done():
                future.set_result(None)

    async def changed(self, name: str, timeout: float = FALLBACK_POLL) -> None:
        """Until ``name`` changes (``notify``) or ``timeout`` passes."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(name, set()).add(future)
        try:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(future, timeout)
        finally:
            waiting = self._waiters.get(name)
            if waiting is not None:
                waiting.discard(future)
                if not waiting:
                    del self._waiters[name]

    async def pause(self, name: str, state: object) -> None:
        """Between two looks at ``state`` of ``name``: short while its process has
        exited and the monitor records it, else until a change or the fallback poll."""
        pid = getattr(state, "pid", 0)
        running = getattr(state, "status", "") in ("running", "paused") and pid
        if running and self.watch(name, pid).is_set():
            await asyncio.sleep(SETTLE_POLL)
            return
        await self.changed(name)


def exits(context: DockerContext) -> Exits:
    value = context.state.get("exits")
    if value is None:
        value = context.state["exits"] = Exits()
    assert isinstance(value, Exits)
    return value
