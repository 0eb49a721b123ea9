"""``RemoteContainers``: ``engine.models.containers.ContainersAPI`` over an agent's API
(``wire.routes.containers``). An attached ``run`` and ``exec`` go over an upgraded
connection that carries ``stdio`` both ways and ends with the exit code."""

from __future__ import annotations

import builtins
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, cast

from reconciler.engine.models import containers as models

if TYPE_CHECKING:
    from reconciler.client.transport import Transport


class RemoteContainers:
    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    def create(self, request: models.RunRequest) -> models.ContainerRef:
        return cast(models.ContainerRef, self._transport.call("containers.create", request=request))

    def start(self, name: str) -> models.ContainerRef:
        return cast(models.ContainerRef, self._transport.call("containers.start", name=name))

    def run(
        self, request: models.RunRequest, stdio: models.Stdio | None = None, *, detach: bool = False
    ) -> models.WaitResult:
        if detach:
            return cast(models.WaitResult, self._transport.call("containers.run", request=request, detach=True))
        code = self._transport.attach("containers.run", stdio, request=request)
        return {"name": request.get("name") or "", "exit_code": code}

    def stop(self, name: str, *, grace: float = 10.0) -> models.ContainerRef:
        return cast(models.ContainerRef, self._transport.call("containers.stop", name=name, grace=grace))

    def kill(self, name: str, *, signal: str = "KILL") -> models.ContainerRef:
        return cast(models.ContainerRef, self._transport.call("containers.kill", name=name, signal=signal))

    def pause(self, name: str) -> models.ContainerRef:
        return cast(models.ContainerRef, self._transport.call("containers.pause", name=name))

    def unpause(self, name: str) -> models.ContainerRef:
        return cast(models.ContainerRef, self._transport.call("containers.unpause", name=name))

    def remove(self, name: str, *, force: bool = False) -> models.ContainerRef:
        return cast(models.ContainerRef, self._transport.call("containers.remove", name=name, force=force))

    def inspect(self, name: str) -> dict[str, Any]:
        return cast(dict[str, Any], self._transport.call("containers.inspect", name=name))

    def list(self, *, all: bool = False) -> builtins.list[models.ContainerSummary]:
        return cast(builtins.list[models.ContainerSummary], self._transport.call("containers.list", all=all))

    def logs(
        self, name: str, *, follow: bool = False, tail: int | None = None, since_ns: int | None = None
    ) -> Iterator[models.LogEntry]:
        return cast(
            Iterator[models.LogEntry],
            self._transport.lines("containers.logs", name=name, follow=follow, tail=tail, since_ns=since_ns),
        )

    def exec(self, name: str, request: models.ExecRequest, stdio: models.Stdio | None = None) -> models.WaitResult:
        code = self._transport.attach("containers.exec", stdio, name=name, request=request)
        return {"name": name, "exit_code": code}

    def stats(self, names: builtins.list[str] | None = None) -> builtins.list[models.ContainerStats]:
        return cast(builtins.list[models.ContainerStats], self._transport.call("containers.stats", names=names or None))

    def wait(self, name: str) -> models.WaitResult:
        return cast(models.WaitResult, self._transport.call("containers.wait", name=name))
