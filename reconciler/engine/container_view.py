"""What the engine shows of a container: the summary of a listing (``ps``) and the
document of ``inspect`` (Docker's shape, Docker's CamelCase field names), both built
from the runtime's recorded state. The summary does no I/O, so a listing of hundreds
of containers stays cheap; ``inspect`` reads the state database once for what the
state does not record (each network's prefix, gateway and the endpoint's aliases).

Standard library only at import time: this is ``reconcile ps``'s path.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from reconciler.engine.models.containers import ContainerSummary, PortSummary

if TYPE_CHECKING:
    from reconciler.runtime.state import ContainerState

#: Files the engine writes for every container and binds in: Docker keeps them out of
#: ``Mounts`` too (they are ``HostnamePath``, ``HostsPath``, ``ResolvConfPath``).
_ETC_FILES = {"/etc/hostname": "HostnamePath", "/etc/hosts": "HostsPath", "/etc/resolv.conf": "ResolvConfPath"}


def summary_id(row: Mapping[str, Any]) -> str:
    """The ID of a container as listings show it: the engine's 64-hex ``id`` where the
    summary has one, else its name (engines that predate IDs)."""
    return str(row.get("id") or row["name"])


def summary(state: ContainerState) -> ContainerSummary:
    spec = state.spec
    image = spec.get("image") or {}
    return {
        "name": state.name,
        "status": state.status,
        "id": state.id,
        "pid": state.pid,
        "exit_code": state.exit_code,
        "image": image.get("name", ""),
        "command": list(spec.get("config", {}).get("argv", [])),
        "created": state.created_at,
        "stack": spec.get("owner"),
        "image_id": image.get("id", ""),
        "started": state.started_at,
        "finished": state.finished_at,
        "labels": dict(spec.get("labels") or {}),
        "ports": ports(spec),
        "networks": [e["network"] for e in spec.get("networks") or []],
        "mounts": mount_texts(spec),
    }


def ports(spec: Mapping[str, Any]) -> list[PortSummary]:
    """The published ports, from their recorded text ``[IP:]HOST:CONTAINER/PROTO``."""
    found: list[PortSummary] = []
    for text in spec.get("ports") or []:
        address, _, protocol = str(text).partition("/")
        parts = address.rsplit(":", 2)
        try:
            host_ip = parts[0] if len(parts) == 3 else ""
            found.append(
                {
                    "host_ip": host_ip or "0.0.0.0",
                    "host_port": int(parts[-2]),
                    "container_port": int(parts[-1]),
                    "protocol": protocol or "tcp",
                }
            )
        except (ValueError, IndexError):
            continue  # not ours to fail a listing over
    return found


def _container_dir(config: Mapping[str, Any]) -> str:
    rootfs = config.get("rootfs") or ""
    return os.path.dirname(rootfs) if rootfs else ""


class _Mount:
    """One mount of the container's own (a plain slotted class: a NamedTuple's class
    costs every ``ps`` about a millisecond to build at import)."""

    __slots__ = ("destination", "kind", "name", "read_only", "source")

    def __init__(self, kind: str, name: str, source: str, destination: str, read_only: bool) -> None:
        self.kind = kind  # bind, volume, tmpfs
        self.name = name  # the volume's; "" for the others
        self.source, self.destination, self.read_only = source, destination, read_only


def _places(config: Mapping[str, Any]) -> tuple[str, str]:
    """Where the container's own files (``ROOT/containers/NAME/etc/``) and the volumes
    (``ROOT/volumes/``) are, from its rootfs's path; plain string work, no ``os.path``:
    every listing asks it of every container."""
    rootfs = config.get("rootfs") or ""
    directory = rootfs[: rootfs.rfind("/")] if "/" in rootfs else ""  # ROOT/containers/NAME
    etc = f"{directory}/etc/" if directory else "\0"
    volumes = directory.rsplit("/", 2)[0] + "/volumes/" if directory.count("/") >= 2 else "\0"
    return etc, volumes


def _volume_name(source: str, volumes: str) -> str:
    """The volume whose directory ``source`` is (``ROOT/volumes/NAME/_data``), else ""."""
    if source.startswith(volumes) and source.endswith("/_data"):
        name = source[len(volumes) : -len("/_data")]
        if "/" not in name:
            return name
    return ""


def mounts(spec: Mapping[str, Any]) -> list[_Mount]:
    """The container's own mounts (``-v``, ``--tmpfs``), not the files the engine binds
    into every container (its ``etc/``). A bind of a volume's directory is that volume."""
    config = spec.get("config") or {}
    etc, volumes = _places(config)
    found = []
    for mount in config.get("mounts") or ():
        target, source = mount.get("target", ""), mount.get("source", "")
        if target in _ETC_FILES and source.startswith(etc):
            continue
        kind = mount.get("type", "bind")
        name = _volume_name(source, volumes) if kind == "bind" else ""
        found.append(_Mount("volume" if name else kind, name, source, target, bool(mount.get("read_only"))))
    return found


def mount_texts(spec: Mapping[str, Any]) -> list[str]:
    """The summary's mounts, as ``run -v`` writes them: ``NAME:/dest`` for a volume,
    ``/source:/dest`` for a bind, ``:ro`` when read-only; tmpfs left out (compact: a
    listing sends one per mount of every container)."""
    config = spec.get("config") or {}
    entries = config.get("mounts")
    if not entries:
        return []
    etc, volumes = _places(config)
    texts = []
    for mount in entries:
        target, source = mount.get("target", ""), mount.get("source", "")
        if mount.get("type") != "bind" or (target in _ETC_FILES and source.startswith(etc)):
            continue
        texts.append(f"{_volume_name(source, volumes) or source}:{target}{':ro' if mount.get('read_only') else ''}")
    return texts


def _iso(timestamp: float | None) -> str:
    if timestamp is None:
        return "0001-01-01T00:00:00Z"  # Docker's zero time
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(timestamp)) + f".{int(timestamp % 1 * 1e9):09d}Z"


def port_map(spec: Mapping[str, Any]) -> dict[str, list[dict[str, str]]]:
    """Docker's ``{"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]}``."""
    bindings: dict[str, list[dict[str, str]]] = {}
    for port in ports(spec):
        key = f"{port['container_port']}/{port['protocol']}"
        bindings.setdefault(key, []).append({"HostIp": port["host_ip"], "HostPort": str(port["host_port"])})
    return bindings


def _docker_mount(mount: _Mount) -> dict[str, Any]:
    """One entry of Docker's ``Mounts``: ``Name`` and ``Driver`` for volumes only."""
    if mount.kind == "volume":
        return {
            "Type": "volume",
            "Name": mount.name,
            "Source": mount.source,
            "Destination": mount.destination,
            "Driver": "local",
            "Mode": "ro" if mount.read_only else "z",
            "RW": not mount.read_only,
            "Propagation": "",
        }
    return {
        "Type": mount.kind,
        "Source": mount.source,
        "Destination": mount.destination,
        "Mode": "ro" if mount.read_only else "",
        "RW": not mount.read_only,
        "Propagation": "rprivate" if mount.kind == "bind" else "",
    }


def _binds(found: list[_Mount]) -> list[str] | None:
    """``HostConfig.Binds`` as ``docker run -v`` wrote them: ``SOURCE:DEST[:ro]``, a
    volume by its name (anonymous volumes, named by 64 hex digits, are not binds)."""
    binds = []
    for mount in found:
        if mount.kind == "tmpfs" or (mount.kind == "volume" and _anonymous(mount.name)):
            continue
        source = mount.name if mount.kind == "volume" else mount.source
        binds.append(f"{source}:{mount.destination}{':ro' if mount.read_only else ''}")
    return binds or None


def _tmpfs(config: Mapping[str, Any]) -> dict[str, str] | None:
    """``HostConfig.Tmpfs``: ``{"/run": "size=64m"}``."""
    found = {m["target"]: m.get("options") or "" for m in config.get("mounts") or [] if m.get("type") == "tmpfs"}
    return found or None


def _anonymous(name: str) -> bool:
    return len(name) == 64 and all(c in "0123456789abcdef" for c in name)


def _signal_name(number: object) -> str | None:
    if not isinstance(number, int) or not number:
        return None
    import signal

    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


def _network_mode(spec: Mapping[str, Any]) -> str:
    if "net" in (spec.get("config") or {}).get("host_namespaces", []):
        return "host"
    networks = spec.get("networks") or []
    return str(networks[0]["network"]) if networks else "none"


def network_details(state: ContainerState) -> dict[str, dict[str, Any]]:
    """What the state database knows of the container's networks: each network's
    subnet prefix and gateway and the endpoint's DNS aliases, by network name. Empty
    when the container has no network or the database cannot be read (the document
    then says what the state recorded)."""
    if not state.spec.get("networks"):
        return {}
    directory = _container_dir(state.spec.get("config") or {})
    if not directory:
        return {}
    from reconciler.state.db import StateDB, StateError

    details: dict[str, dict[str, Any]] = {}
    with contextlib.suppress(StateError, OSError):
        database = StateDB(os.path.dirname(os.path.dirname(directory)))
        try:
            aliases = {e.network: list(e.aliases) for e in database.list_endpoints(container=state.name)}
            for entry in state.spec["networks"]:
                record = database.get_network(entry["network"])
                if record is not None:
                    details[record.name] = {
                        "IPPrefixLen": record.subnet.prefixlen,
                        "Gateway": str(record.gateway),
                        "Aliases": aliases.get(record.name),
                    }
        finally:
            database.close()
    return details


def _networks(state: ContainerState, details: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Docker's ``NetworkSettings.Networks``; a container on no bridge network is on
    ``none`` or ``host``, with no address, as Docker lists it."""
    entries = state.spec.get("networks") or [{"network": _network_mode(state.spec)}]
    networks = {}
    for entry in entries:
        name = entry["network"]
        known = details.get(name) or {}
        networks[name] = {
            "IPAMConfig": None,
            "Links": None,
            "Aliases": known.get("Aliases"),
            "MacAddress": entry.get("mac", ""),
            "NetworkID": name,  # networks have no IDs of their own yet
            "EndpointID": "",
            "Gateway": known.get("Gateway", ""),
            "IPAddress": entry.get("address", ""),
            "IPPrefixLen": known.get("IPPrefixLen", 0),
            "IPv6Gateway": "",
            "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0,
            "DNSNames": known.get("Aliases"),
        }
    return networks


def inspect_document(state: ContainerState, details: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """``docker inspect``'s shape, from the recorded state; ``details`` are the
    networks' (``network_details``), looked up here when not given."""
    spec = state.spec
    config = spec.get("config", {})
    limits = spec.get("limits", {})
    image = spec.get("image") or {}
    argv = config.get("argv") or []
    running = state.status in ("running", "paused")
    found = mounts(spec)
    bindings = port_map(spec)
    networks = _networks(state, network_details(state) if details is None else details)
    directory = _container_dir(config)
    etc_paths = {key: f"{directory}/etc/{os.path.basename(p)}" if directory else "" for p, key in _ETC_FILES.items()}
    # the legacy top-level address fields are the default bridge's, as Docker fills them
    bridge = networks.get("bridge") or {}
    return {
        "Id": state.id,
        "Created": _iso(state.created_at),
        "Path": argv[0] if argv else "",
        "Args": argv[1:],
        "State": {
            "Status": state.status,
            "Running": running,
            "Paused": state.status == "paused",
            "Restarting": False,
            "OOMKilled": state.oom_killed,
            "Dead": False,
            "Pid": state.pid if running else 0,
            "ExitCode": state.exit_code or 0,
            "Error": state.error or "",
            "StartedAt": _iso(state.started_at),
            "FinishedAt": _iso(state.finished_at),
        },
        "Image": image.get("id", ""),
        "ResolvConfPath": etc_paths["ResolvConfPath"],
        "HostnamePath": etc_paths["HostnamePath"],
        "HostsPath": etc_paths["HostsPath"],
        "Name": f"/{state.name}",
        "RestartCount": state.restart_count,
        "Driver": "overlay2" if config.get("overlay") else "",
        "Platform": "linux",
        "Mounts": [_docker_mount(m) for m in found if m.kind != "tmpfs"],
        "Config": {
            "Hostname": config.get("hostname") or "",
            "User": f"{config.get('uid', 0)}:{config.get('gid', 0)}",
            "Tty": config.get("tty", False),
            "ExposedPorts": {key: {} for key in bindings} or None,
            "Env": config.get("env", []),
            "Cmd": argv,
            "Image": image.get("name", ""),
            "WorkingDir": config.get("cwd", "/"),
            "Labels": spec.get("labels") or {},
            "StopSignal": _signal_name(spec.get("stop_signal")),
        },
        "HostConfig": {
            "Binds": _binds(found),
            "NetworkMode": _network_mode(spec),
            "PortBindings": bindings,
            "Memory": limits.get("memory") or 0,
            "MemorySwap": limits.get("memory_swap") or 0,
            "NanoCpus": int((limits.get("cpus") or 0) * 1e9),
            "CpuShares": limits.get("cpu_shares") or 0,
            "CpusetCpus": limits.get("cpuset") or "",
            "PidsLimit": limits.get("pids"),
            "ReadonlyRootfs": config.get("read_only", False),
            "Init": config.get("init", False),
            "CapAdd": None,
            "Tmpfs": _tmpfs(config),
        },
        "NetworkSettings": {
            "Bridge": "",
            "SandboxKey": config.get("netns") or "",
            "Ports": bindings,
            "Gateway": bridge.get("Gateway", ""),
            "IPAddress": bridge.get("IPAddress", ""),
            "IPPrefixLen": bridge.get("IPPrefixLen", 0),
            "MacAddress": bridge.get("MacAddress", ""),
            "Networks": networks,
        },
    }
