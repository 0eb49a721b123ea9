"""``RemoteEvents``: ``engine.models.events.EventsAPI`` over an agent's API."""

from __future__ import annotations

import builtins
from collections.abc import Iterator
from typing import TYPE_CHECKING, cast

from reconciler.engine.models import events as models

if TYPE_CHECKING:
    from reconciler.client.transport import Transport


class RemoteEvents:
    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    def list(self, *, since: float | None = None) -> builtins.list[models.Event]:
        return cast(builtins.list[models.Event], self.transport.call("events.list", since=since))

    def follow(self, *, since: float | None = None) -> Iterator[models.Event]:
        """The events so far, then each one as the agent appends it; a stream the
        agent cuts ends with ``Unavailable``."""
        return cast(Iterator[models.Event], self.transport.lines("events.follow", since=since))
