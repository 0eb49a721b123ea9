"""Docker's volume endpoints over ``engine.volumes``: ls, create, inspect, rm, prune.

A volume's users (for ``dangling``, prune's reports and ``system df``) are the
containers with a mount inside its mountpoint, read from their inspect documents.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from aiohttp import web

from reconciler.dockerapi.context import DockerContext, Routes
from reconciler.dockerapi.errors import DockerError, boolean, filters, json_body, json_response
from reconciler.dockerapi.events import emit as emit_event
from reconciler.engine import errors
from reconciler.engine.models.volumes import VolumeSummary, inspect_document

if TYPE_CHECKING:
    from reconciler.engine.core import Engine


def document(summary: VolumeSummary) -> dict[str, Any]:
    """One volume in Docker's shape."""
    doc = inspect_document(summary)
    doc.pop("Retain", None)
    doc["Labels"] = doc["Labels"] or {}
    doc["Options"] = doc["Options"] or {}
    return doc


def _sources(doc: dict[str, Any]) -> list[str]:
    """The host paths a container's inspect document says it mounts (Docker's
    ``Mounts[].Source`` or the engine's ``HostConfig.Mounts[].source``)."""
    found = []
    host_config = doc.get("HostConfig") or {}
    for mount in [*(doc.get("Mounts") or []), *(host_config.get("Mounts") or [])]:
        if isinstance(mount, dict):
            source = mount.get("Source") or mount.get("source")
            if isinstance(source, str) and source:
                found.append(os.path.normpath(source))
    return found


def users(engine: Engine, volumes: list[VolumeSummary]) -> dict[str, int]:
    """How many containers (any status) mount each volume."""
    mountpoints = {volume["name"]: os.path.normpath(volume["mountpoint"]) for volume in volumes}
    counts = dict.fromkeys(mountpoints, 0)
    for container in engine.containers.list(all=True):
        try:
            sources = _sources(engine.containers.inspect(container["name"]))
        except errors.NotFound:
            continue  # removed meanwhile
        for name, mountpoint in mountpoints.items():
            if any(source == mountpoint or source.startswith(mountpoint + os.sep) for source in sources):
                counts[name] += 1
    return counts


def _matches(doc: dict[str, Any], used: int, wanted: dict[str, list[str]]) -> bool:
    if wanted.get("name") and not any(value in doc["Name"] for value in wanted["name"]):
        return False
    if wanted.get("driver") and doc["Driver"] not in wanted["driver"]:
        return False
    if wanted.get("dangling") and (wanted["dangling"][0].lower() in ("true", "1")) != (used == 0):
        return False
    for item in wanted.get("label", []):
        key, sep, value = item.partition("=")
        if key not in doc["Labels"] or (sep and doc["Labels"][key] != value):
            return False
    return True


def _list(engine: Engine, wanted: dict[str, list[str]]) -> dict[str, Any]:
    unknown = set(wanted) - {"name", "driver", "dangling", "label"}
    if unknown:
        raise DockerError(400, f"invalid filter '{sorted(unknown)[0]}'")
    volumes = engine.volumes.list()
    counts = users(engine, volumes) if "dangling" in wanted else {}
    docs = [document(volume) for volume in volumes]
    return {
        "Volumes": [doc for doc in docs if _matches(doc, counts.get(doc["Name"], 0), wanted)],
        "Warnings": [],
    }


async def list_volumes(request: web.Request, context: DockerContext) -> web.StreamResponse:
    wanted = filters(request)
    return json_response(await context.call(_list, context.engine, wanted))


def no_such_volume(name: str) -> DockerError:
    return DockerError(404, f"get {name}: no such volume")


def _inspect(engine: Engine, name: str) -> dict[str, Any]:
    try:
        return engine.volumes.inspect(name)
    except (errors.NotFound, errors.InvalidRequest):
        raise no_such_volume(name) from None


def _create(engine: Engine, body: dict[str, Any]) -> dict[str, Any]:
    driver = body.get("Driver") or "local"
    if driver != "local":
        raise DockerError(400, f"volume driver {driver!r} is not supported: only local volumes")
    if body.get("DriverOpts"):
        raise DockerError(400, "volume driver options (DriverOpts) are not supported")
    name = body.get("Name") or None
    labels = body.get("Labels") or {}
    if not isinstance(labels, dict):
        raise DockerError(400, "Labels: a JSON object of strings")
    labels = {str(k): str(v) for k, v in labels.items()}
    try:
        summary = engine.volumes.create({"name": name, "labels": labels})
    except errors.Conflict:
        if name is None:
            raise
        # Docker answers a create of an existing volume with that volume, whatever its labels
        doc = engine.volumes.inspect(name)
        doc.pop("Retain", None)
        return doc
    return document(summary)


async def create_volume(request: web.Request, context: DockerContext) -> web.StreamResponse:
    body = await json_body(request)
    doc = await context.call(_create, context.engine, body)
    emit_event(context, "volume", "create", doc["Name"], {"driver": doc["Driver"]})
    return json_response(doc, status=201)


async def inspect_volume(request: web.Request, context: DockerContext) -> web.StreamResponse:
    doc = await context.call(_inspect, context.engine, request.match_info["name"])
    doc.pop("Retain", None)
    return json_response(doc)


def _remove(engine: Engine, name: str, force: bool) -> None:
    try:
        engine.volumes.remove(name, force=force)
    except errors.NotFound:
        raise no_such_volume(name) from None
    except errors.Conflict as exc:
        raise DockerError(409, f"remove {name}: volume is in use - {exc.message}") from None


async def remove_volume(request: web.Request, context: DockerContext) -> web.StreamResponse:
    name = request.match_info["name"]
    await context.call(_remove, context.engine, name, boolean(request, "force"))
    emit_event(context, "volume", "destroy", name, {"driver": "local"})
    return web.Response(status=204)


def _prune(engine: Engine, wanted: dict[str, list[str]], version: tuple[int, int]) -> dict[str, Any]:
    """Unused anonymous volumes; named ones too with ``all=true`` (API 1.42 and
    later), or always before 1.42, as moby decides."""
    unsupported = set(wanted) - {"all", "label"}
    if unsupported:
        raise DockerError(400, f"volume prune: filter {sorted(unsupported)[0]!r} is not supported")
    everything = version < (1, 42) or any(v.lower() in ("true", "1") for v in wanted.get("all", []))
    if not wanted.get("label"):
        result = engine.volumes.prune(all=everything)
        return {"VolumesDeleted": result["removed"] or None, "SpaceReclaimed": result["reclaimed_bytes"]}
    volumes = engine.volumes.list()
    counts = users(engine, volumes)
    removed = []
    for volume in volumes:
        doc = document(volume)
        if counts.get(volume["name"]) or volume["retain"] == "retain":
            continue
        if not (volume["anonymous"] or everything) or not _matches(doc, 0, {"label": wanted["label"]}):
            continue
        try:
            engine.volumes.remove(volume["name"])
        except (errors.Conflict, errors.NotFound):
            continue
        removed.append(volume["name"])
    return {"VolumesDeleted": removed or None, "SpaceReclaimed": 0}


async def prune_volumes(request: web.Request, context: DockerContext) -> web.StreamResponse:
    wanted = filters(request)
    version = request.get("docker_version", (1, 50))
    result = await context.call(_prune, context.engine, wanted, version)
    for name in result["VolumesDeleted"] or []:
        emit_event(context, "volume", "destroy", name, {"driver": "local"})
    return json_response(result)


ROUTES: Routes = [
    ("GET", "/volumes", list_volumes),
    ("POST", "/volumes/create", create_volume),
    ("POST", "/volumes/prune", prune_volumes),
    ("GET", "/volumes/{name}", inspect_volume),
    ("DELETE", "/volumes/{name}", remove_volume),
]
