"""``RemoteVolumes``: ``engine.models.volumes.VolumesAPI`` over an agent's API."""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING, Any, cast

from reconciler.engine.models import volumes as models

if TYPE_CHECKING:
    from reconciler.client.transport import Transport


class RemoteVolumes:
    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    def create(self, request: models.VolumeCreateRequest) -> models.VolumeSummary:
        return cast(models.VolumeSummary, self._transport.call("volumes.create", request=request))

    def list(self) -> builtins.list[models.VolumeSummary]:
        return cast(builtins.list[models.VolumeSummary], self._transport.call("volumes.list"))

    def inspect(self, name: str) -> dict[str, Any]:
        return cast(dict[str, Any], self._transport.call("volumes.inspect", name=name))

    def remove(self, name: str, *, force: bool = False) -> models.VolumeRef:
        return cast(models.VolumeRef, self._transport.call("volumes.remove", name=name, force=force))

    def prune(self, *, all: bool = False) -> models.VolumePruneResult:
        return cast(models.VolumePruneResult, self._transport.call("volumes.prune", all=all))
