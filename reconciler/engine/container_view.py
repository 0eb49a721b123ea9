"""What the engine shows of a container: the summary of a listing (``ps``) and the
document of ``inspect`` (Docker's shape), both built from the runtime's recorded state
alone (no I/O), so a listing of hundreds of containers stays cheap.

Standard library only at import time: this is ``reconcile ps``'s path.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from reconciler.engine.models.containers import ContainerSummary

if TYPE_CHECKING:
    from reconciler.runtime.state import ContainerState


def summary(state: ContainerState) -> ContainerSummary:
    return {
        "name": state.name,
        "status": state.status,
        "pid": state.pid,
        "exit_code": state.exit_code,
        "image": (state.spec.get("image") or {}).get("name", ""),
        "command": list(state.spec.get("config", {}).get("argv", [])),
        "created": state.created_at,
        "stack": state.spec.get("owner"),
    }


def _iso(timestamp: float | None) -> str:
    if timestamp is None:
        return "0001-01-01T00:00:00Z"  # Docker's zero time
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(timestamp)) + f".{int(timestamp % 1 * 1e9):09d}Z"


def inspect_document(state: ContainerState) -> dict[str, Any]:
    """``docker inspect``'s shape, from the recorded state."""
    config = state.spec.get("config", {})
    limits = state.spec.get("limits", {})
    image = state.spec.get("image") or {}
    return {
        "Name": state.name,
        "Created": _iso(state.created_at),
        "Path": (config.get("argv") or [""])[0],
        "Args": (config.get("argv") or [])[1:],
        "State": {
            "Status": state.status,
            "Running": state.status in ("running", "paused"),
            "Paused": state.status == "paused",
            "OOMKilled": state.oom_killed,
            "Pid": state.pid if state.status in ("running", "paused") else 0,
            "ExitCode": state.exit_code or 0,
            "Error": state.error or "",
            "StartedAt": _iso(state.started_at),
            "FinishedAt": _iso(state.finished_at),
        },
        "Image": image.get("id", ""),
        "RestartCount": state.restart_count,
        "Config": {
            "Hostname": config.get("hostname"),
            "Image": image.get("name", ""),
            "User": f"{config.get('uid', 0)}:{config.get('gid', 0)}",
            "Env": config.get("env", []),
            "Cmd": config.get("argv", []),
            "WorkingDir": config.get("cwd", "/"),
            "Tty": config.get("tty", False),
            "Labels": state.spec.get("labels") or {},
        },
        "HostConfig": {
            "Memory": limits.get("memory") or 0,
            "MemorySwap": limits.get("memory_swap") or 0,
            "NanoCpus": int((limits.get("cpus") or 0) * 1e9),
            "CpuShares": limits.get("cpu_shares") or 0,
            "CpusetCpus": limits.get("cpuset") or "",
            "PidsLimit": limits.get("pids"),
            "ReadonlyRootfs": config.get("read_only", False),
            "Init": config.get("init", False),
            "CapAdd": None,
            "Mounts": config.get("mounts", []),
        },
        "NetworkSettings": {
            "Networks": {
                e["network"]: {"IPAddress": e.get("address", ""), "MacAddress": e.get("mac", "")}
                for e in state.spec.get("networks") or []
            },
            "Ports": state.spec.get("ports") or [],
        },
    }
