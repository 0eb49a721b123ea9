"""Every route of the native API, by resource."""

from __future__ import annotations

from reconciler.wire.route import Route
from reconciler.wire.routes import containers, events, images, networks, services, stacks, system, volumes

ROUTES: tuple[Route, ...] = (
    *containers.ROUTES,
    *images.ROUTES,
    *networks.ROUTES,
    *volumes.ROUTES,
    *stacks.ROUTES,
    *services.ROUTES,
    *system.ROUTES,
    *events.ROUTES,
)

BY_OP: dict[str, Route] = {route.op: route for route in ROUTES}
