"""``RemoteSystem``: ``engine.models.system.SystemAPI`` over an agent's API."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from reconciler.engine.models import system as models

if TYPE_CHECKING:
    from reconciler.client.transport import Transport


class RemoteSystem:
    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    def info(self) -> models.SystemInfo:
        return cast(models.SystemInfo, self.transport.call("system.info"))

    def version(self) -> models.VersionInfo:
        return cast(models.VersionInfo, self.transport.call("system.version"))

    def df(self) -> models.DiskUsage:
        return cast(models.DiskUsage, self.transport.call("system.df"))

    def prune(self, *, volumes: bool = False) -> models.SystemPruneResult:
        return cast(models.SystemPruneResult, self.transport.call("system.prune", volumes=volumes))
