"""``Engine``: the in-process implementation of the engine API.

One object per engine root. Its operation groups (``engine.containers``,
``engine.images``, ``engine.networks``, ``engine.volumes``, ``engine.stacks``,
``engine.services``, ``engine.system``, ``engine.events``) are built on first use,
each importing only what it needs, so ``reconcile run`` pays for containers alone.
The remote client (``reconciler.client.remote.RemoteEngine``) has the same groups
with the same signatures; front ends are written against either.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from reconciler.engine.locks import ObjectLocks
from reconciler.engine.wiring import EngineConfig, Wiring

if TYPE_CHECKING:
    from reconciler.engine.containers import Containers
    from reconciler.engine.events import Events
    from reconciler.engine.images import Images
    from reconciler.engine.networks import Networks
    from reconciler.engine.services import Services
    from reconciler.engine.stacks import Stacks
    from reconciler.engine.system import System
    from reconciler.engine.volumes import Volumes


class Engine:
    def __init__(self, config: EngineConfig | None = None) -> None:
        self.config = config or EngineConfig.from_environment()
        self.wiring = Wiring(self.config)
        self.locks = ObjectLocks()
        #: Where this engine answers: "local" in-process; the agent sets its socket.
        self.host = "local"
        #: Who hears of what the engine did (the agent's metrics): ``observer(event, fields)``.
        self.observers: list[Callable[[str, dict[str, Any]], None]] = []

    def notify(self, event: str, **fields: Any) -> None:
        """Tell the observers: ``pulled`` (bytes), ``rollout`` (result), ``pass``
        (outcome, seconds). An observer's failure is never the operation's."""
        for observer in self.observers:
            with contextlib.suppress(Exception):
                observer(event, fields)

    @functools.cached_property
    def containers(self) -> Containers:
        from reconciler.engine.containers import Containers

        return Containers(self)

    @functools.cached_property
    def images(self) -> Images:
        from reconciler.engine.images import Images

        return Images(self)

    @functools.cached_property
    def networks(self) -> Networks:
        from reconciler.engine.networks import Networks

        return Networks(self)

    @functools.cached_property
    def volumes(self) -> Volumes:
        from reconciler.engine.volumes import Volumes

        return Volumes(self)

    @functools.cached_property
    def stacks(self) -> Stacks:
        from reconciler.engine.stacks import Stacks

        return Stacks(self)

    @functools.cached_property
    def services(self) -> Services:
        from reconciler.engine.services import Services

        return Services(self)

    @functools.cached_property
    def system(self) -> System:
        from reconciler.engine.system import System

        return System(self)

    @functools.cached_property
    def events(self) -> Events:
        from reconciler.engine.events import Events

        return Events(self)

    def close(self) -> None:
        if "images" in self.__dict__:  # built (a cached_property): its background unpacks finish first
            self.images.close()
        self.wiring.close()
