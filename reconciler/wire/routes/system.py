"""System over HTTP (``engine.models.system``)."""

from __future__ import annotations

from reconciler.wire.route import Route

ROUTES: tuple[Route, ...] = ()
