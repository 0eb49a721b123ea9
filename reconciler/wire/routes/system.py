"""System over HTTP (``engine.models.system``)."""

from __future__ import annotations

from reconciler.wire.route import Route

ROUTES: tuple[Route, ...] = (
    Route("GET", "/v1/system/info", "system.info", result="system.SystemInfo", summary="the engine and what it holds"),
    Route(
        "GET",
        "/v1/system/version",
        "system.version",
        result="system.VersionInfo",
        summary="versions of the engine, its API and its Python",
    ),
    Route(
        "GET",
        "/v1/system/df",
        "system.df",
        result="system.DiskUsage",
        summary="bytes used by images, containers and volumes, and what pruning would free",
    ),
    Route(
        "POST",
        "/v1/system/prune",
        "system.prune",
        query=(("volumes", "bool"),),
        result="system.SystemPruneResult",
        summary="remove stopped containers, unused networks, unreachable image data (and unused anonymous volumes)",
    ),
)
