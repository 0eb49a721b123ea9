"""``RemoteNetworks``: ``engine.models.networks.NetworksAPI`` over an agent's API."""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING, Any, cast

from reconciler.engine.models import networks as models

if TYPE_CHECKING:
    from reconciler.client.transport import Transport


class RemoteNetworks:
    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    def create(self, request: models.NetworkCreateRequest) -> models.NetworkSummary:
        return cast(models.NetworkSummary, self._transport.call("networks.create", request=request))

    def list(self) -> builtins.list[models.NetworkSummary]:
        return cast(builtins.list[models.NetworkSummary], self._transport.call("networks.list"))

    def inspect(self, name: str) -> dict[str, Any]:
        return cast(dict[str, Any], self._transport.call("networks.inspect", name=name))

    def remove(self, name: str) -> models.NetworkRef:
        return cast(models.NetworkRef, self._transport.call("networks.remove", name=name))

    def prune(self) -> models.NetworkPruneResult:
        return cast(models.NetworkPruneResult, self._transport.call("networks.prune"))

    def connect(self, name: str, request: models.NetworkConnectRequest) -> models.NetworkEndpoint:
        return cast(models.NetworkEndpoint, self._transport.call("networks.connect", name=name, request=request))

    def disconnect(self, name: str, request: models.NetworkDisconnectRequest) -> models.NetworkEndpoint:
        return cast(models.NetworkEndpoint, self._transport.call("networks.disconnect", name=name, request=request))
