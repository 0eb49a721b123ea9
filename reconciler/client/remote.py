"""``RemoteEngine``: the engine's operation groups over HTTP to an agent, with the same
signatures as ``reconciler.engine.core.Engine``'s (both are an
``engine.models.engine.EngineAPI``), so a command is written once. Each group is
built on first use (``reconcile ps`` imports the containers client alone)."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from reconciler.client.transport import TLSFiles, Transport

if TYPE_CHECKING:
    from reconciler.client.containers import RemoteContainers
    from reconciler.client.events import RemoteEvents
    from reconciler.client.images import RemoteImages
    from reconciler.client.networks import RemoteNetworks
    from reconciler.client.services import RemoteServices
    from reconciler.client.stacks import RemoteStacks
    from reconciler.client.system import RemoteSystem
    from reconciler.client.volumes import RemoteVolumes


class RemoteEngine:
    def __init__(self, host: str, *, tls: TLSFiles | None = None) -> None:
        self.transport = Transport(host, tls=tls)
        self.host = host

    @functools.cached_property
    def containers(self) -> RemoteContainers:
        from reconciler.client.containers import RemoteContainers

        return RemoteContainers(self.transport)

    @functools.cached_property
    def images(self) -> RemoteImages:
        from reconciler.client.images import RemoteImages

        return RemoteImages(self.transport)

    @functools.cached_property
    def networks(self) -> RemoteNetworks:
        from reconciler.client.networks import RemoteNetworks

        return RemoteNetworks(self.transport)

    @functools.cached_property
    def volumes(self) -> RemoteVolumes:
        from reconciler.client.volumes import RemoteVolumes

        return RemoteVolumes(self.transport)

    @functools.cached_property
    def stacks(self) -> RemoteStacks:
        from reconciler.client.stacks import RemoteStacks

        return RemoteStacks(self.transport)

    @functools.cached_property
    def services(self) -> RemoteServices:
        from reconciler.client.services import RemoteServices

        return RemoteServices(self.transport)

    @functools.cached_property
    def system(self) -> RemoteSystem:
        from reconciler.client.system import RemoteSystem

        return RemoteSystem(self.transport)

    @functools.cached_property
    def events(self) -> RemoteEvents:
        from reconciler.client.events import RemoteEvents

        return RemoteEvents(self.transport)

    def close(self) -> None:
        """Nothing held between requests: each opens its own connection."""
