"""``EngineAPI``: what every front end is written against. ``engine.core.Engine``
(in-process) and ``client.remote.RemoteEngine`` (an agent) both are one; mypy checks
that they keep the same signatures."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from reconciler.engine.models.containers import ContainersAPI
    from reconciler.engine.models.events import EventsAPI
    from reconciler.engine.models.images import ImagesAPI
    from reconciler.engine.models.networks import NetworksAPI
    from reconciler.engine.models.services import ServicesAPI
    from reconciler.engine.models.stacks import StacksAPI
    from reconciler.engine.models.system import SystemAPI
    from reconciler.engine.models.volumes import VolumesAPI


class EngineAPI(Protocol):
    #: "local" in-process, else where the agent answers (``unix:///…``, ``tcp://…``).
    host: str

    @property
    def containers(self) -> ContainersAPI: ...

    @property
    def images(self) -> ImagesAPI: ...

    @property
    def networks(self) -> NetworksAPI: ...

    @property
    def volumes(self) -> VolumesAPI: ...

    @property
    def stacks(self) -> StacksAPI: ...

    @property
    def services(self) -> ServicesAPI: ...

    @property
    def system(self) -> SystemAPI: ...

    @property
    def events(self) -> EventsAPI: ...

    def close(self) -> None: ...
