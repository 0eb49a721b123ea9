"""A container in Docker's shapes: a ``GET /containers/json`` item and the
``GET /containers/{id}/json`` document, from the runtime's recorded state and the
Docker fields kept beside it. No I/O (a listing only records the ids it shows,
``store.remember``, so later lookups by id are one read)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from reconciler.dockerapi import store

if TYPE_CHECKING:
    from reconciler.engine.core import Engine
    from reconciler.runtime.state import ContainerState

ZERO_TIME = "0001-01-01T00:00:00Z"
_ETC_FILES = ("/etc/hostname", "/etc/hosts", "/etc/resolv.conf")


def iso(timestamp: float | None) -> str:
    if not timestamp:
        return ZERO_TIME
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(timestamp)) + f".{int(timestamp % 1 * 1e9):09d}Z"


def _ago(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 1:
        return "Less than a second"
    if seconds < 60:
        return f"{int(seconds)} seconds"
    if seconds < 3600:
        minutes = int(seconds // 60)
        return "About a minute" if minutes == 1 else f"{minutes} minutes"
    if seconds < 86400 * 2:
        hours = int(seconds // 3600)
        return "About an hour" if hours == 1 else f"{hours} hours"
    return f"{int(seconds // 86400)} days"


def status_text(state: ContainerState, now: float | None = None) -> str:
    """``Up 5 seconds``, ``Exited (0) 3 seconds ago``, ``Created``: ``ps``'s STATUS."""
    now = time.time() if now is None else now
    if state.status == "running":
        return f"Up {_ago(now - (state.started_at or now))}"
    if state.status == "paused":
        return f"Up {_ago(now - (state.started_at or now))} (Paused)"
    if state.status == "exited":
        return f"Exited ({state.exit_code or 0}) {_ago(now - (state.finished_at or now))} ago"
    return "Created"


def _ports(state: ContainerState, docker: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    seen: set[tuple[int, str]] = set()
    for port in state.spec.get("ports") or []:
        parsed = _published(port)
        if parsed is None:
            continue
        rows.append(parsed)
        seen.add((parsed["PrivatePort"], parsed["Type"]))
    config = docker.get("Config") or {}
    for key in config.get("ExposedPorts") or {}:
        number, _, protocol = str(key).partition("/")
        if number.isdigit() and (int(number), protocol or "tcp") not in seen:
            rows.append({"PrivatePort": int(number), "Type": protocol or "tcp"})
    return rows


def _published(port: Any) -> dict[str, Any] | None:
    """``[IP:]HOST:CONTAINER[/proto]`` (the engine's record) as a ``Ports`` row."""
    if not isinstance(port, str):
        return None
    spec, _, protocol = port.partition("/")
    parts = spec.rsplit(":", 2)
    if len(parts) < 2 or not parts[-1].isdigit() or not parts[-2].isdigit():
        return None
    ip = parts[0] if len(parts) == 3 and parts[0] else "0.0.0.0"
    return {
        "IP": ip.strip("[]"),
        "PrivatePort": int(parts[-1]),
        "PublicPort": int(parts[-2]),
        "Type": protocol or "tcp",
    }


def _port_map(rows: list[dict[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for row in rows:
        key = f"{row['PrivatePort']}/{row['Type']}"
        if "PublicPort" in row:
            result.setdefault(key, []).append({"HostIp": row["IP"], "HostPort": str(row["PublicPort"])})
        else:
            result.setdefault(key, None)
    return result


def _networks(state: ContainerState, docker: dict[str, Any]) -> dict[str, Any]:
    networks: dict[str, Any] = {}
    for endpoint in state.spec.get("networks") or []:
        if not isinstance(endpoint, dict):
            continue
        address = str(endpoint.get("address") or "")
        ip, _, prefix = address.partition("/")
        networks[str(endpoint.get("network"))] = {
            "IPAMConfig": None,
            "Links": None,
            "Aliases": endpoint.get("aliases"),
            "NetworkID": "",
            "EndpointID": "",
            "Gateway": str(endpoint.get("gateway") or ""),
            "IPAddress": ip,
            "IPPrefixLen": int(prefix) if prefix.isdigit() else 0,
            "IPv6Gateway": "",
            "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0,
            "MacAddress": str(endpoint.get("mac") or ""),
            "DriverOpts": None,
        }
    if not networks:
        config = state.spec.get("config") or {}
        mode = "host" if "net" in (config.get("host_namespaces") or []) else "none"
        networks[mode] = {"IPAddress": "", "Gateway": "", "MacAddress": "", "IPPrefixLen": 0, "NetworkID": ""}
    return networks


def _mounts(state: ContainerState) -> list[dict[str, Any]]:
    rows = []
    for mount in (state.spec.get("config") or {}).get("mounts") or []:
        kind = str(mount.get("type") or "bind")
        source = str(mount.get("source") or "")
        target = str(mount.get("target") or "")
        if target in _ETC_FILES and source.endswith(f"/{state.name}{target}"):
            continue  # the engine's own /etc/hosts and friends, as Docker leaves them out
        row: dict[str, Any] = {
            "Type": kind,
            "Source": source,
            "Destination": str(mount.get("target") or ""),
            "Mode": "ro" if mount.get("read_only") else "",
            "RW": not mount.get("read_only"),
            "Propagation": "rprivate" if kind == "bind" else "",
        }
        if "/volumes/" in source:  # a named or anonymous volume of the engine
            row["Type"] = "volume"
            parts = source.rstrip("/").split("/")
            row["Name"] = parts[parts.index("volumes") + 1] if "volumes" in parts else ""
            row["Driver"] = "local"
        rows.append(row)
    return rows


def _image(state: ContainerState) -> tuple[str, str]:
    image = state.spec.get("image") or {}
    ident = str(image.get("id") or "")
    if ident and not ident.startswith("sha256:"):
        ident = "sha256:" + ident
    return str(image.get("name") or ""), ident


def _command(config: dict[str, Any]) -> str:
    return " ".join(str(a) for a in config.get("argv") or [])


def summary(state: ContainerState, docker: dict[str, Any], engine: Engine | None = None) -> dict[str, Any]:
    """One ``GET /containers/json`` item."""
    config = state.spec.get("config") or {}
    image, image_id = _image(state)
    host = docker.get("HostConfig") or {}
    ports = _ports(state, docker)
    return {
        "Id": store.remember(engine, state) if engine is not None else store.docker_id(state),
        "Names": ["/" + state.name],
        "Image": image,
        "ImageID": image_id,
        "Command": _command(config),
        "Created": int(state.created_at),
        "Ports": ports,
        "Labels": state.spec.get("labels") or {},
        "State": state.status,
        "Status": status_text(state),
        "HostConfig": {"NetworkMode": host.get("NetworkMode") or "default"},
        "NetworkSettings": {"Networks": _networks(state, docker)},
        "Mounts": _mounts(state),
    }


def _user(config: dict[str, Any], docker: dict[str, Any]) -> str:
    requested = (docker.get("Config") or {}).get("User")
    if requested:
        return str(requested)
    uid, gid = config.get("uid", 0), config.get("gid", 0)
    return "" if not uid and not gid else f"{uid}:{gid}"


def inspect(state: ContainerState, docker: dict[str, Any], health: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``GET /containers/{id}/json`` document."""
    config = state.spec.get("config") or {}
    limits = state.spec.get("limits") or {}
    extra_config = docker.get("Config") or {}
    extra_host = docker.get("HostConfig") or {}
    image, image_id = _image(state)
    argv = list(config.get("argv") or [])
    ports = _ports(state, docker)
    networks = _networks(state, docker)
    running = state.status in ("running", "paused")
    labels = state.spec.get("labels") or {}
    mode = extra_host.get("NetworkMode") or next(iter(networks), "default")
    state_doc: dict[str, Any] = {
        "Status": state.status,
        "Running": running,
        "Paused": state.status == "paused",
        "Restarting": False,
        "OOMKilled": bool(state.oom_killed),
        "Dead": False,
        "Pid": state.pid if running else 0,
        "ExitCode": state.exit_code or 0,
        "Error": state.error or "",
        "StartedAt": iso(state.started_at),
        "FinishedAt": iso(state.finished_at),
    }
    if health is not None:
        state_doc["Health"] = health
    first: dict[str, Any] = next(iter(networks.values()), {})
    return {
        "Id": store.docker_id(state),
        "Created": iso(state.created_at),
        "Path": argv[0] if argv else "",
        "Args": argv[1:],
        "State": state_doc,
        "Image": image_id,
        "ResolvConfPath": "",
        "HostnamePath": "",
        "HostsPath": "",
        "LogPath": "",
        "Name": "/" + state.name,
        "RestartCount": state.restart_count,
        "Driver": "overlay2",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": None,
        "HostConfig": {
            "Binds": extra_host.get("Binds"),
            "ContainerIDFile": "",
            "LogConfig": {"Type": "json-file", "Config": {}},
            "NetworkMode": mode,
            "PortBindings": extra_host.get("PortBindings") or {},
            "RestartPolicy": extra_host.get("RestartPolicy") or {"Name": "no", "MaximumRetryCount": 0},
            "AutoRemove": bool(extra_host.get("AutoRemove")),
            "VolumeDriver": "",
            "VolumesFrom": None,
            "CapAdd": None,
            "CapDrop": None,
            "Dns": [],
            "DnsOptions": [],
            "DnsSearch": [],
            "ExtraHosts": None,
            "Privileged": False,
            "PublishAllPorts": False,
            "ReadonlyRootfs": bool(config.get("read_only")),
            "Memory": limits.get("memory") or 0,
            "MemorySwap": limits.get("memory_swap") or 0,
            "NanoCpus": int((limits.get("cpus") or 0) * 1e9),
            "CpuShares": limits.get("cpu_shares") or 0,
            "CpusetCpus": limits.get("cpuset") or "",
            "PidsLimit": limits.get("pids"),
            "Init": bool(config.get("init")),
            "Mounts": extra_host.get("Mounts"),
        },
        "GraphDriver": {"Name": "overlay2", "Data": None},
        "Mounts": _mounts(state),
        "Config": {
            "Hostname": config.get("hostname") or "",
            "Domainname": "",
            "User": _user(config, docker),
            "AttachStdin": bool(extra_config.get("AttachStdin")),
            "AttachStdout": bool(extra_config.get("AttachStdout")),
            "AttachStderr": bool(extra_config.get("AttachStderr")),
            "ExposedPorts": extra_config.get("ExposedPorts") or None,
            "Tty": bool(config.get("tty")),
            "OpenStdin": bool(extra_config.get("OpenStdin")),
            "StdinOnce": bool(extra_config.get("StdinOnce")),
            "Env": list(config.get("env") or []),
            "Cmd": argv[1:] if extra_config.get("Entrypoint") else argv,
            "Healthcheck": extra_config.get("Healthcheck"),
            "Image": image,
            "Volumes": extra_config.get("Volumes"),
            "WorkingDir": config.get("cwd") or "/",
            "Entrypoint": extra_config.get("Entrypoint"),
            "OnBuild": None,
            "Labels": labels,
            "StopSignal": str(state.spec.get("stop_signal") or ""),
        },
        "NetworkSettings": {
            "Bridge": "",
            "SandboxID": "",
            "SandboxKey": "",
            "Ports": _port_map(ports),
            "HairpinMode": False,
            "LinkLocalIPv6Address": "",
            "LinkLocalIPv6PrefixLen": 0,
            "SecondaryIPAddresses": None,
            "SecondaryIPv6Addresses": None,
            "EndpointID": "",
            "Gateway": first.get("Gateway", ""),
            "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0,
            "IPAddress": first.get("IPAddress", ""),
            "IPPrefixLen": first.get("IPPrefixLen", 0),
            "IPv6Gateway": "",
            "MacAddress": first.get("MacAddress", ""),
            "Networks": networks,
        },
    }
