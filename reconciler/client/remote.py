"""``RemoteEngine``: the engine's operation groups over HTTP to an agent, with the same
signatures as ``reconciler.engine.core.Engine``'s, so a command is written once.
Each group is built on first use (``reconcile ps`` imports the containers client
alone)."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from reconciler.client.transport import TLSFiles, Transport

if TYPE_CHECKING:
    from reconciler.client.containers import RemoteContainers


class RemoteEngine:
    def __init__(self, host: str, *, tls: TLSFiles | None = None) -> None:
        self.transport = Transport(host, tls=tls)
        self.host = host

    @functools.cached_property
    def containers(self) -> RemoteContainers:
        from reconciler.client.containers import RemoteContainers

        return RemoteContainers(self.transport)

    def _group(self, module: str, cls: str) -> Any:
        import importlib

        return getattr(importlib.import_module(f"reconciler.client.{module}"), cls)(self.transport)

    @functools.cached_property
    def images(self) -> Any:
        return self._group("images", "RemoteImages")

    @functools.cached_property
    def networks(self) -> Any:
        return self._group("networks", "RemoteNetworks")

    @functools.cached_property
    def volumes(self) -> Any:
        return self._group("volumes", "RemoteVolumes")

    @functools.cached_property
    def stacks(self) -> Any:
        return self._group("stacks", "RemoteStacks")

    @functools.cached_property
    def system(self) -> Any:
        return self._group("system", "RemoteSystem")

    @functools.cached_property
    def events(self) -> Any:
        return self._group("events", "RemoteEvents")

    def close(self) -> None:
        pass
