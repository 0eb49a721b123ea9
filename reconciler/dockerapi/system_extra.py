"""``GET /system/df`` (``docker system df``) and ``POST /build/prune`` (called by
``docker system prune``); the classic builder's ``POST /build`` is registered here
too while ``app.MODULES`` does not list ``build``.

``docker system df`` adds up the lists it is given: images (``Containers`` says
which are in use), containers (``SizeRw``) and volumes (``UsageData``), with
``LayersSize`` the images' total on disk. The totals are the engine's
(``engine.system.df``); per object sizes are measured the same way
(``engine.system.disk_usage``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from reconciler.dockerapi import build as build_module
from reconciler.dockerapi import images as image_module
from reconciler.dockerapi import volumes as volume_module
from reconciler.dockerapi.context import DockerContext, Routes
from reconciler.dockerapi.errors import json_response
from reconciler.dockerapi.ids import docker_id
from reconciler.engine import errors

if TYPE_CHECKING:
    from reconciler.engine.core import Engine


def _container_size(engine: Engine, name: str) -> int:
    """Bytes of a container's own directory (writable layer, logs, state)."""
    from reconciler.engine.system import disk_usage

    try:
        return disk_usage(engine.wiring.runtime().store.path(name))
    except (OSError, ValueError):
        return 0


def _status(state: str, exit_code: int | None) -> str:
    if state == "exited":
        return f"Exited ({exit_code or 0})"
    if state == "running":
        return "Up"
    return state.capitalize()


def disk_usage(engine: Engine) -> dict[str, Any]:
    from reconciler.engine.system import disk_usage as measure

    totals = engine.system.df()
    images = image_module._summaries(engine)
    users: dict[str, int] = {}
    containers = []
    for entry in engine.containers.list(all=True):
        try:
            doc = engine.containers.inspect(entry["name"])
        except errors.NotFound:
            continue  # removed meanwhile
        image_id = str(doc.get("Image") or "")
        users[image_id] = users.get(image_id, 0) + 1
        size = _container_size(engine, entry["name"])
        containers.append(
            {
                "Id": docker_id(entry),
                "Names": [f"/{entry['name']}"],
                "Image": entry["image"],
                "ImageID": image_id,
                "Command": " ".join(entry["command"]),
                "Created": int(entry["created"]),
                "State": entry["status"],
                "Status": _status(entry["status"], entry["exit_code"]),
                "SizeRw": size,
                "SizeRootFs": size,
                "Labels": (doc.get("Config") or {}).get("Labels") or {},
                "Mounts": [],
            }
        )
    for image in images:
        image["Containers"] = users.get(image["Id"], 0)
        image["SharedSize"] = 0
    volumes = engine.volumes.list()
    counts = volume_module.users(engine, volumes)
    volume_docs = []
    for volume in volumes:
        doc = volume_module.document(volume)
        doc["UsageData"] = {"Size": measure(volume["mountpoint"]), "RefCount": counts.get(volume["name"], 0)}
        volume_docs.append(doc)
    return {
        "LayersSize": totals["images"]["bytes"],
        "Images": images,
        "Containers": containers,
        "Volumes": volume_docs,
        "BuildCache": [],
    }


async def system_df(request: web.Request, context: DockerContext) -> web.StreamResponse:
    return json_response(await context.call(disk_usage, context.engine))


async def prune_build_cache(request: web.Request, context: DockerContext) -> web.StreamResponse:
    """The builder's step cache goes with the images it made (``images/prune``):
    nothing of its own to free here."""
    return json_response({"CachesDeleted": None, "SpaceReclaimed": 0})


def _build_routes() -> Routes:
    from reconciler.dockerapi import app

    return [] if "build" in app.MODULES else build_module.ROUTES


ROUTES: Routes = [
    ("GET", "/system/df", system_df),
    ("POST", "/build/prune", prune_build_cache),
    *_build_routes(),
]
