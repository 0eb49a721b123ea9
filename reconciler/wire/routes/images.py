"""Images over HTTP (``engine.models.images``)."""

from __future__ import annotations

from reconciler.wire.route import Route

ROUTES: tuple[Route, ...] = ()
