"""``/_ping``, ``/version`` and ``/info``: what every client asks first (negotiation)."""

from __future__ import annotations

import os
import platform
from typing import Any

from aiohttp import web

from reconciler import __version__
from reconciler.dockerapi.app import API_VERSION, MIN_API_VERSION
from reconciler.dockerapi.context import DockerContext, Routes
from reconciler.dockerapi.errors import json_response

_PING_HEADERS = {
    "Api-Version": API_VERSION,
    "Docker-Experimental": "false",
    "Ostype": "linux",
    "Builder-Version": "1",
    "Swarm": "inactive",
    "Cache-Control": "no-cache, no-store, must-revalidate",
    "Pragma": "no-cache",
}


async def ping(request: web.Request, context: DockerContext) -> web.StreamResponse:
    body = "" if request.method == "HEAD" else "OK"
    return web.Response(text=body, content_type="text/plain", headers=_PING_HEADERS)


async def version(request: web.Request, context: DockerContext) -> web.StreamResponse:
    info = await context.call(context.engine.system.version)
    kernel = platform.release()
    details = {
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "reconcile",
        "GoVersion": f"python{info['python']}",
        "Os": "linux",
        "Arch": info["arch"],
        "KernelVersion": kernel,
        "Experimental": "false",
        "BuildTime": "",
    }
    return json_response(
        {
            "Platform": {"Name": f"reconcile {__version__}"},
            "Components": [{"Name": "Engine", "Version": __version__, "Details": details}],
            "Version": __version__,
            "ApiVersion": API_VERSION,
            "MinAPIVersion": MIN_API_VERSION,
            "GitCommit": "reconcile",
            "GoVersion": f"python{info['python']}",
            "Os": "linux",
            "Arch": info["arch"],
            "KernelVersion": kernel,
            "BuildTime": "",
        }
    )


async def info(request: web.Request, context: DockerContext) -> web.StreamResponse:
    data = await context.call(context.engine.system.info)
    counts = data["containers"]
    body: dict[str, Any] = {
        "ID": "reconcile:" + data["root"],
        "Containers": counts["total"],
        "ContainersRunning": counts["running"],
        "ContainersPaused": counts["paused"],
        "ContainersStopped": counts["exited"] + counts["created"],
        "Images": data["images"],
        "Driver": "overlay2",
        "DriverStatus": [],
        "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "null"], "Log": ["json-file"]},
        "MemoryLimit": data["cgroup_version"] is not None,
        "SwapLimit": data["cgroup_version"] is not None,
        "CpuCfsPeriod": True,
        "CpuCfsQuota": True,
        "PidsLimit": True,
        "IPv4Forwarding": True,
        "Debug": False,
        "NFd": 0,
        "NGoroutines": 0,
        "SystemTime": "",
        "LoggingDriver": "json-file",
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": str(data["cgroup_version"] or ""),
        "NEventsListener": 0,
        "KernelVersion": data["kernel"],
        "OperatingSystem": _os_name(),
        "OSVersion": "",
        "OSType": "linux",
        "Architecture": platform.machine(),
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": {
            "InsecureRegistryCIDRs": ["127.0.0.0/8"],
            "IndexConfigs": {},
            "Mirrors": [],
        },
        "NCPU": data["cpus"],
        "MemTotal": data["memory"],
        "DockerRootDir": data["root"],
        "Name": platform.node(),
        "Labels": [],
        "ExperimentalBuild": False,
        "ServerVersion": data["version"],
        "Runtimes": {"reconcile": {"path": "reconcile"}},
        "DefaultRuntime": "reconcile",
        "Swarm": {
            "NodeID": "",
            "NodeAddr": "",
            "LocalNodeState": "inactive",
            "ControlAvailable": False,
            "Error": "",
            "RemoteManagers": None,
        },
        "LiveRestoreEnabled": True,
        "Isolation": "",
        "InitBinary": "",
        "SecurityOptions": [],
        "Warnings": [],
    }
    return json_response(body)


def _os_name() -> str:
    try:
        with open("/etc/os-release") as handle:
            for line in handle:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return os.uname().sysname


ROUTES: Routes = [
    ("GET", "/_ping", ping),
    ("HEAD", "/_ping", ping),
    ("GET", "/version", version),
    ("GET", "/info", info),
]
