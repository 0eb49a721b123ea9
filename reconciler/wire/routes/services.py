"""Services over HTTP (``engine.models.services``): read-only, as the loop owns them."""

from __future__ import annotations

from reconciler.wire.route import Route

ROUTES: tuple[Route, ...] = (
    Route(
        "GET",
        "/v1/services",
        "services.list",
        result="list[services.ServiceSummary]",
        summary="list the services the reconcile loop applied, with their replicas running",
    ),
    Route(
        "GET",
        "/v1/services/{name}",
        "services.inspect",
        result="services.ServiceDocument",
        summary="a service: its replicas (status, health, template) and the spec as applied",
    ),
)
