"""What every Docker API handler gets besides its request: the engine, and a way to
call it without blocking the event loop."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any, TypeVar

from aiohttp import web

if TYPE_CHECKING:
    from reconciler.engine.core import Engine

T = TypeVar("T")


class DockerContext:
    """The engine and the agent's thread pool (shared with the native API)."""

    def __init__(self, engine: Engine, executor: Executor) -> None:
        self.engine = engine
        self.executor = executor
        #: per-module state that must live as long as the app (exec instances, ...)
        self.state: dict[str, Any] = {}

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` in the thread pool: engine calls block (syscalls, SQLite)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, functools.partial(fn, *args, **kwargs))


Handler = Callable[[web.Request, DockerContext], Awaitable[web.StreamResponse]]
Routes = list[tuple[str, str, Handler]]
