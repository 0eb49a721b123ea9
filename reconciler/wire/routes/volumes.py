"""Volumes over HTTP (``engine.models.volumes``)."""

from __future__ import annotations

from reconciler.wire.route import Route

ROUTES: tuple[Route, ...] = ()
