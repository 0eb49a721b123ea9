"""Volumes over HTTP (``engine.models.volumes``)."""

from __future__ import annotations

from reconciler.wire.route import Route

ROUTES: tuple[Route, ...] = (
    Route("GET", "/v1/volumes", "volumes.list", result="list[volumes.VolumeSummary]", summary="list volumes"),
    Route(
        "POST",
        "/v1/volumes",
        "volumes.create",
        body=("request", "volumes.VolumeCreateRequest"),
        result="volumes.VolumeSummary",
        status=201,
        summary="create a volume (anonymous without a name; the existing one when its labels are the same)",
    ),
    Route(
        "POST",
        "/v1/volumes/prune",
        "volumes.prune",
        query=(("all", "bool"),),
        result="volumes.VolumePruneResult",
        summary="remove unused anonymous volumes (with all, unused named ones too)",
    ),
    Route(
        "GET",
        "/v1/volumes/{name}",
        "volumes.inspect",
        result="dict",
        summary="a volume (Docker's inspect shape)",
    ),
    Route(
        "DELETE",
        "/v1/volumes/{name}",
        "volumes.remove",
        query=(("force", "bool"),),
        result="volumes.VolumeRef",
        summary="remove a volume no container uses (force: a missing one is no error)",
    ),
)
