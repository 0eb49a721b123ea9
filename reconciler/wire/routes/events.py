"""Events over HTTP (``engine.models.events``)."""

from __future__ import annotations

from reconciler.wire.route import Route

ROUTES: tuple[Route, ...] = ()
