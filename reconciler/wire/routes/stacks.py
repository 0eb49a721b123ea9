"""Stacks over HTTP (``engine.models.stacks``)."""

from __future__ import annotations

from reconciler.wire.route import Route

ROUTES: tuple[Route, ...] = ()
