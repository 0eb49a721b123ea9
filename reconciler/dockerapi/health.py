"""Healthchecks of containers made through the Docker API (``docker run
--health-cmd …``, kept in the container's Docker record), run by the same
``runtime.health.HealthMonitor`` the reconcile loop uses for manifests' containers,
with Docker's rules and defaults; ``inspect`` shows ``State.Health`` as dockerd does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from aiohttp import web

from reconciler.dockerapi import store
from reconciler.runtime import health

if TYPE_CHECKING:
    from reconciler.dockerapi.context import DockerContext


def configs(context: DockerContext) -> dict[str, health.HealthConfig]:
    """The running containers that have a healthcheck in their Docker record."""
    engine = context.engine
    found: dict[str, health.HealthConfig] = {}
    for row in engine.containers.list():
        check = (store.recorded(engine, row["name"], row["id"]).get("Config") or {}).get("Healthcheck")
        if not check:
            continue
        try:
            config = health.HealthConfig.from_model(check)
        except (TypeError, ValueError):  # refused at create; a record edited by hand is skipped
            continue
        if config is not None:
            found[row["name"]] = config
    return found


def document(context: DockerContext, name: str) -> dict[str, Any] | None:
    """``State.Health`` of ``name``, None when it has no healthcheck."""
    check = (store.sidecar(context.engine, name).get("Config") or {}).get("Healthcheck")
    if not check or check.get("Test") in (None, [], ["NONE"]):
        return None
    state = health.read_health(store.runtime(context.engine).root, name)
    if state is None:
        return {"Status": "starting", "FailingStreak": 0, "Log": []}
    return {
        "Status": state.status,
        "FailingStreak": state.failing_streak,
        "Log": [
            {
                "Start": _iso(result.started_at),
                "End": _iso(result.started_at + result.duration),
                "ExitCode": result.exit_code,
                "Output": result.output,
            }
            for result in state.log
        ],
    }


def _iso(timestamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(timestamp)) + f".{int(timestamp % 1 * 1e9):09d}Z"


async def checking(app: web.Application) -> AsyncIterator[None]:
    """aiohttp's cleanup context: the monitor runs while the app serves."""
    from reconciler.dockerapi.app import CONTEXT

    context: DockerContext = app[CONTEXT]
    monitor = health.HealthMonitor(store.runtime(context.engine), lambda: configs(context), poll=1.0)
    monitor.start()
    yield
    await asyncio.get_running_loop().run_in_executor(None, monitor.stop)
