"""A container's log entries as an async stream: what it wrote (``tail``, ``since``),
then, with ``follow``, what it writes until it has exited or the reader is gone.
The file is read in a worker thread; entries cross to the loop through a queue."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from aiohttp import web

from reconciler.dockerapi import store
from reconciler.dockerapi.context import DockerContext
from reconciler.dockerapi.exits import exits

if TYPE_CHECKING:
    from reconciler.runtime.logread import Entry

POLL_SECONDS = 0.05
#: The follower's own pause when ``stop`` waits on the exit instead.
FAST_POLL = 0.005
_END = object()


def _exited(context: DockerContext, name: str) -> bool:
    try:
        return store.runtime(context.engine).inspect(name).status == "exited"
    except Exception:
        return True  # removed


async def wait_started(context: DockerContext, name: str, cancelled: threading.Event | None = None) -> bool:
    """Until ``name`` has been started (its log exists); False when it is gone first."""
    path = store.runtime(context.engine).store.path(name, "container.log")
    while not os.path.exists(path):
        if cancelled is not None and cancelled.is_set():
            return False
        try:
            state = await context.call(store.runtime(context.engine).inspect, name)
        except Exception:
            return False
        if state.status == "exited" and not os.path.exists(path):
            return False  # exited without a log: a start that failed
        # created, or running with its log about to be made (the monitor records
        # the start, then makes the log, then answers the starter)
        await exits(context).changed(name, POLL_SECONDS if state.status == "created" else FAST_POLL)
    return True


async def entries(
    context: DockerContext,
    name: str,
    *,
    follow: bool,
    tail: int | None = None,
    since_ns: int | None = None,
    cancelled: threading.Event,
) -> AsyncIterator[Entry]:
    from reconciler.runtime import logread

    path = store.runtime(context.engine).store.path(name, "container.log")
    if not follow:
        for entry in (
            await context.call(logread.read, path, tail=tail, since_ns=since_ns) if os.path.exists(path) else []
        ):
            yield entry
        return
    if not await wait_started(context, name, cancelled):
        return
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[object] = asyncio.Queue(maxsize=0)
    seen_exit = [0]
    try:
        state = await context.call(store.runtime(context.engine).inspect, name)
    except Exception:
        state = None
    exited_event = (
        exits(context).watch(name, state.pid) if state is not None and state.status in ("running", "paused") else None
    )

    def stop() -> bool:
        # Called when nothing new was read. While the process runs, wait here (the
        # follower itself polls fast, so an exit is acted on at once); once it has
        # exited, one more read after the exit is recorded: what it wrote counts.
        if cancelled.is_set():
            return True
        if exited_event is not None and not seen_exit[0]:
            exited_event.wait(POLL_SECONDS - FAST_POLL)
        if _exited(context, name):
            seen_exit[0] += 1
        return seen_exit[0] >= 2

    def work() -> None:
        try:
            for entry in logread.follow(path, tail=tail, since_ns=since_ns, stop=stop, poll_seconds=FAST_POLL):
                if cancelled.is_set():
                    break
                loop.call_soon_threadsafe(queue.put_nowait, entry)
        except FileNotFoundError:
            pass
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, _END)

    job = loop.run_in_executor(context.executor, work)
    try:
        while True:
            item = await queue.get()
            if item is _END:
                break
            yield item  # type: ignore[misc]
    finally:
        cancelled.set()
        await asyncio.shield(job) if not job.done() else None


#: How often a quiet stream looks whether its client is still there.
CLIENT_POLL = 0.5


async def watch_client(request: web.Request, cancelled: threading.Event) -> None:
    """Set ``cancelled`` once the client's connection is gone: a follower of a quiet
    container would otherwise notice only at its next write, maybe at the exit."""
    while not cancelled.is_set():
        transport = request.transport
        if transport is None or transport.is_closing():
            cancelled.set()
            return
        await asyncio.sleep(CLIENT_POLL)


def now_ns() -> int:
    return time.time_ns()
