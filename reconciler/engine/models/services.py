"""Services: what ``service ls`` and ``service inspect`` give.

A Service (``kind: Service``) exists for the engine once the reconcile loop applied
it: its manifest is recorded in the state database. Its replicas are containers named
``NAME-1`` … ``NAME-N``, each recording which service and which template (a hash of
the container template) it runs.

No ``from __future__ import annotations`` here, as in ``models.containers``: the
annotations are real objects, nothing for the API's schema writer to resolve.
"""

import builtins
from typing import Any, Protocol, TypedDict


class ServiceSummary(TypedDict):
    """One row of ``service ls``: the recorded manifest and its replicas now."""

    name: str
    stack: str  # the stack that applied it
    replicas_desired: int  # spec.replicas
    replicas_running: int  # replicas whose container is running
    image: str  # the reference the replicas run (an Image of the stack resolved to its tag)
    ports: list[str]  # published ports: [IP:]HOST:CONTAINER/PROTOCOL
    update_order: str  # start-first or stop-first
    applied_at: float  # when the loop last applied it, seconds since the epoch


class ReplicaInfo(TypedDict):
    name: str  # NAME-1 …
    status: str  # created, running, paused, exited
    health: str | None  # starting, healthy, unhealthy; None without a healthcheck
    template: str | None  # the hash of the template it runs
    pid: int  # its pid 1 as the host sees it; 0 when not running
    updated: bool  # it runs the template of the recorded manifest


class ServiceDocument(ServiceSummary):
    """``service inspect``: the summary, each replica, and the spec as applied."""

    template: str  # the hash of the recorded manifest's template (what updated replicas run)
    replicas_updated: int  # replicas running that template
    replicas: list[ReplicaInfo]  # every replica that exists, by number
    spec: dict[str, Any]  # the manifest's spec as the loop recorded it (defaults filled in)


class ServicesAPI(Protocol):
    """What every front end may see of services; read-only (the reconcile loop makes,
    scales, updates and removes them from manifests).

    Worked example::

        engine.services.list()[0]["replicas_running"]     # 2
        engine.services.inspect("web")["replicas"]         # [{"name": "web-1", ...}, ...]
        engine.services.inspect("nope")                    # errors.NotFound
    """

    def list(self) -> builtins.list[ServiceSummary]: ...

    def inspect(self, name: str) -> ServiceDocument: ...
