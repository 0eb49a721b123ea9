"""Docker's restart policies for containers made through the Docker API.

``docker run --restart always|unless-stopped|on-failure[:N]`` is recorded in the
container's Docker record (``docker.json``); dockerd starts such a container again
when it exits. Here a task of the agent looks every half second at the exited
containers (the engine's kept listing: a ``stat`` each) and starts again those whose
policy says so, with the engine's crash-loop backoff (at once, then 0.5 s doubling
to 5 minutes, reset after ten seconds of running) and its rule that a container the
user stopped stays stopped (``control.observe.wants_restart``, the manifests' rule).
Docker's ``no`` never restarts (a manifest's ``no`` still heals a crash); ``on-failure``
counts the restarts against its maximum (0: no maximum).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from aiohttp import web

from reconciler.dockerapi import store
from reconciler.engine import errors

if TYPE_CHECKING:
    from reconciler.dockerapi.context import DockerContext

log = logging.getLogger("reconcile.docker")

#: Seconds between two looks.
INTERVAL = 0.5


def restart_due(context: DockerContext) -> list[str]:
    """Start again every exited container whose policy asks for it now; their names."""
    from reconciler.control.observe import wants_restart

    engine = context.engine
    started = []
    for row in engine.containers.list(all=True):
        if row["status"] != "exited":
            continue
        name = row["name"]
        policy = (store.recorded(engine, name, row["id"]).get("HostConfig") or {}).get("RestartPolicy") or {}
        kind = str(policy.get("Name") or "no")
        if kind in ("", "no"):
            continue
        state = store.runtime(engine).store.read(name)
        if state is None:
            continue
        retries = int(policy.get("MaximumRetryCount") or 0)
        if not wants_restart(state, {"name": kind, "max_retries": retries or None}):
            continue
        try:
            engine.containers.start(name)
        except errors.EngineError as exc:  # removed meanwhile, or it cannot start: tried again next time
            log.warning("restarting container %s (restart policy %s): %s", name, kind, exc)
            continue
        started.append(name)
    return started


async def _supervise(context: DockerContext) -> None:
    while True:
        await asyncio.sleep(INTERVAL)
        try:
            await context.call(restart_due, context)
        except Exception:  # a bug must not end the policies of every container
            log.exception("applying restart policies failed")


async def supervising(app: web.Application) -> AsyncIterator[None]:
    """aiohttp's cleanup context: the task runs while the app serves."""
    from reconciler.dockerapi.app import CONTEXT

    task = asyncio.ensure_future(_supervise(app[CONTEXT]))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
