"""``RemoteServices``: ``engine.models.services.ServicesAPI`` over an agent's API."""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING, cast

from reconciler.engine.models import services as models

if TYPE_CHECKING:
    from reconciler.client.transport import Transport


class RemoteServices:
    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    def list(self) -> builtins.list[models.ServiceSummary]:
        return cast(builtins.list[models.ServiceSummary], self._transport.call("services.list"))

    def inspect(self, name: str) -> models.ServiceDocument:
        return cast(models.ServiceDocument, self._transport.call("services.inspect", name=name))
