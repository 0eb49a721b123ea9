"""The Container kind: one process tree in its own namespaces, cgroup and rootfs.

Fields follow what Docker and Compose users write (``ports: ["8080:80"]``,
``volumes: ["data:/var/lib/x:ro"]``, ``restart: on-failure:3``); each accepts the
short string form and a long mapping form, and stores the long form.
"""

from __future__ import annotations

import posixpath
import re
import signal as _signal
from ipaddress import IPv4Address, ip_address
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, WithJsonSchema, field_validator, model_validator

from reconciler.model import capabilities
from reconciler.model.common import (
    API_VERSION,
    AlsoAccepts,
    Bytes,
    Cpus,
    DNSLabel,
    Duration,
    Metadata,
    ScalarStr,
    Strict,
    string_or_list,
)

Protocol = Literal["tcp", "udp", "sctp"]


class PortMapping(Strict):
    """One published port. A range in the short form expands into one mapping per port."""

    container_port: int = Field(ge=1, le=65535)
    host_port: int | None = Field(default=None, ge=1, le=65535, description="unset: an ephemeral host port")
    host_ip: str | None = Field(default=None, description="unset: all host addresses")
    protocol: Protocol = "tcp"

    @field_validator("host_ip")
    @classmethod
    def _ip(cls, value: str | None) -> str | None:
        if value in (None, "", "0.0.0.0"):
            return None
        return str(ip_address(value))


_PORT_RE = re.compile(
    r"^(?:(?:(?P<ip>\[[0-9a-fA-F:.]+\]|[0-9.]+):)?(?P<host>\d*(?:-\d+)?):)?"
    r"(?P<ctr>\d+(?:-\d+)?)(?:/(?P<proto>[a-z]+))?$"
)


def _port_range(text: str) -> list[int]:
    first, _, last = text.partition("-")
    start, end = int(first), int(last or first)
    if end < start:
        raise ValueError(f"port range {text} ends before it starts")
    if last and end > 65535:  # checked before expanding: 1-999999999 would not fit in memory
        raise ValueError(f"port range {text} goes past 65535")
    return list(range(start, end + 1))


def parse_port(value: Any) -> list[Any]:
    """Expand ``[ip:][host[-range]:]container[-range][/proto]`` into mappings."""
    if isinstance(value, int) and not isinstance(value, bool):
        return [{"container_port": value}]
    if not isinstance(value, str):
        return [value]
    match = _PORT_RE.match(value.strip())
    if not match:
        raise ValueError(f"invalid port {value!r}: use [ip:][host:]container[/tcp|udp], e.g. 127.0.0.1:8080:80")
    ip = match.group("ip")
    if ip:
        ip = ip.strip("[]")
    proto = match.group("proto") or "tcp"
    ctr = _port_range(match.group("ctr"))
    host_text = match.group("host")
    host: list[int | None] = list(_port_range(host_text)) if host_text else [None] * len(ctr)
    if len(host) != len(ctr):
        raise ValueError(f"invalid port {value!r}: host and container ranges differ in length")
    return [
        {"container_port": c, "host_port": h, "host_ip": ip, "protocol": proto} for h, c in zip(host, ctr, strict=True)
    ]


def _expand_ports(value: Any) -> Any:
    """Expand ranges when every item parses; otherwise leave the list as written,
    so each bad item is reported at its own index by the item validator."""
    if not isinstance(value, list):
        return value
    try:
        return [mapping for item in value for mapping in parse_port(item)]
    except ValueError:
        return value


def _single_port(value: Any) -> Any:
    """Item-level parse, reached only when some item of the list is invalid."""
    mappings = parse_port(value)
    return mappings[0] if mappings else value


_PORT_SHORT = {
    "type": ["string", "integer"],
    "description": "[ip:][host[-range]:]container[-range][/tcp|udp]",
    "pattern": _PORT_RE.pattern,
}
Ports = Annotated[
    list[Annotated[PortMapping, BeforeValidator(_single_port), AlsoAccepts(_PORT_SHORT)]],
    BeforeValidator(_expand_ports),
]


class NetworkAttachment(Strict):
    aliases: list[DNSLabel] = Field(default_factory=list, description="extra DNS names on this network")
    ipv4_address: IPv4Address | None = Field(default=None, description="a static address from the network's subnet")


def _networks(value: Any) -> Any:
    """``[front, back]`` is short for ``{front: {}, back: {}}``."""
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list):
        out: dict[Any, Any] = {}
        for item in value:
            if not isinstance(item, str):
                raise ValueError("list items must be network names; use a mapping for aliases and addresses")
            out[item] = {}
        return out
    if isinstance(value, dict):
        return {k: ({} if v is None else v) for k, v in value.items()}
    return value


class VolumeMount(Strict):
    type: Literal["volume"] = "volume"
    source: DNSLabel = Field(description="name of a Volume in this stack")
    target: str
    read_only: bool = False
    subpath: str | None = Field(default=None, description="mount only this directory of the volume")


class BindMount(Strict):
    type: Literal["bind"] = "bind"
    source: str = Field(description="host path; relative paths are relative to the manifest file")
    target: str
    read_only: bool = False
    create: bool = Field(default=False, description="create the host path when it is missing")


def parse_volume(value: Any) -> Any:
    """``SOURCE:TARGET[:ro|rw]``: a source starting with ``/``, ``.`` or ``~`` is a bind."""
    if not isinstance(value, str):
        return value
    parts = value.split(":")
    if len(parts) == 1:
        raise ValueError(f"invalid volume {value!r}: anonymous volumes are not supported; use NAME:{value}")
    if len(parts) > 3:
        raise ValueError(f"invalid volume {value!r}: use SOURCE:TARGET[:ro]")
    source, target = parts[0], parts[1]
    options = parts[2].split(",") if len(parts) == 3 else []
    unknown = [o for o in options if o not in ("ro", "rw", "z", "Z")]
    if unknown:
        raise ValueError(f"invalid volume {value!r}: unknown option {unknown[0]!r} (use ro or rw)")
    kind = "bind" if source.startswith(("/", ".", "~")) else "volume"
    return {"type": kind, "source": source, "target": target, "read_only": "ro" in options}


Mount = Annotated[
    Annotated[VolumeMount | BindMount, Field(discriminator="type")],
    BeforeValidator(parse_volume),
    AlsoAccepts({"type": "string", "description": "NAME:/target[:ro] or /host/path:/target[:ro]"}),
]


class TmpfsMount(Strict):
    target: str
    size: Bytes | None = Field(default=None, description="unset: half of RAM, as the kernel does")
    mode: Annotated[int, AlsoAccepts({"type": "string", "pattern": "^[0-7]{3,4}$"})] = Field(
        default=0o1777, ge=0, le=0o7777, description="permission bits; write octal as 0o1777 or '1777'"
    )

    @field_validator("mode", mode="before")
    @classmethod
    def _octal(cls, value: Any) -> Any:
        return int(value, 8) if isinstance(value, str) and value.isdigit() else value


def parse_tmpfs(value: Any) -> Any:
    """``/run[:size=64m,mode=1777]`` as in ``docker run --tmpfs``."""
    if not isinstance(value, str):
        return value
    target, _, opts = value.partition(":")
    out: dict[str, Any] = {"target": target}
    for opt in filter(None, opts.split(",")):
        key, eq, val = opt.partition("=")
        if key not in ("size", "mode") or not eq:
            raise ValueError(f"invalid tmpfs option {opt!r}: use size=64m or mode=1777")
        out[key] = val
    return out


class Resources(Strict):
    memory: Bytes | None = Field(default=None, description="memory limit")
    memory_swap: Bytes | None = Field(default=None, description="memory + swap limit; unset: twice memory, as Docker")
    memory_reservation: Bytes | None = None
    cpus: Cpus | None = Field(default=None, description="CPU quota in CPUs")
    cpu_shares: int | None = Field(default=None, ge=2, le=262144, description="relative weight (v1 shares)")
    cpuset: str | None = Field(default=None, pattern=r"^\d+(-\d+)?(,\d+(-\d+)?)*$", description="CPUs allowed: 0-3,5")
    pids: int | None = Field(default=None, ge=1, description="maximum number of processes")

    @model_validator(mode="after")
    def _limits(self) -> Resources:
        if self.memory is not None and self.memory < 6 * 1024 * 1024:
            raise ValueError("memory must be at least 6m")
        if self.memory_swap is not None:
            if self.memory is None:
                raise ValueError("memory_swap needs memory")
            if self.memory_swap < self.memory:
                raise ValueError("memory_swap must be at least memory (it counts memory plus swap)")
        return self


class RestartPolicy(Strict):
    name: Literal["no", "on-failure", "always", "unless-stopped"] = "no"
    max_retries: int | None = Field(default=None, ge=0, description="on-failure only: give up after this many")

    @model_validator(mode="after")
    def _retries(self) -> RestartPolicy:
        if self.max_retries is not None and self.name != "on-failure":
            raise ValueError("max_retries applies only to on-failure")
        return self


def _restart(value: Any) -> Any:
    if value is False:
        return {"name": "no"}
    if isinstance(value, str):
        name, _, retries = value.partition(":")
        if retries:
            if not retries.isdigit():
                raise ValueError(f"invalid restart policy {value!r}: use on-failure:N")
            return {"name": name, "max_retries": int(retries)}
        return {"name": name}
    return value


Restart = Annotated[
    RestartPolicy,
    BeforeValidator(_restart),
    AlsoAccepts({"type": ["string", "boolean"], "pattern": r"^(no|always|unless-stopped|on-failure(:\d+)?)$"}),
]


class Healthcheck(Strict):
    test: Annotated[list[str], AlsoAccepts({"type": "string", "description": "a shell command"})] = Field(
        description='["CMD", "arg"...], ["CMD-SHELL", "cmd"] or a shell command string'
    )
    interval: Duration = 30.0
    timeout: Duration = 30.0
    retries: int = Field(default=3, ge=0)
    start_period: Duration = 0.0
    start_interval: Duration = 5.0
    disable: bool = False

    @field_validator("test", mode="before")
    @classmethod
    def _test(cls, value: Any) -> Any:
        if isinstance(value, str):
            return ["CMD-SHELL", value]
        if isinstance(value, list) and value and value[0] not in ("CMD", "CMD-SHELL", "NONE"):
            return ["CMD", *value]
        return value

    @field_validator("test")
    @classmethod
    def _nonempty(cls, value: list[str]) -> list[str]:
        if not value or (value[0] != "NONE" and len(value) < 2):
            raise ValueError("a healthcheck test needs a command")
        return value


class Dependency(Strict):
    condition: Literal["started", "healthy", "completed"] = Field(
        default="started", description="completed: exited with code 0 (one-shot jobs)"
    )


def _depends_on(value: Any) -> Any:
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list):
        if not all(isinstance(item, str) for item in value):
            raise ValueError("list items must be names; use a mapping to set a condition")
        return {item: {} for item in value}
    if isinstance(value, dict):
        return {k: ({} if v is None else v) for k, v in value.items()}
    return value


_SIGNALS = {s.name: s for s in _signal.Signals if not s.name.startswith("SIG_")}


def _signal_name(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return _signal.Signals(value).name
        except ValueError:
            raise ValueError(f"unknown signal number {value}") from None
    if isinstance(value, str):
        name = value.upper()
        name = name if name.startswith("SIG") else "SIG" + name
        if name not in _SIGNALS:
            raise ValueError(f"unknown signal {value!r}")
        return name
    return value


CAPABILITIES = frozenset(capabilities.NAMES)


def _capabilities(value: Any) -> Any:
    """Canonical form: ``CAP_NET_ADMIN``, sorted, no duplicates; ``ALL`` allowed."""
    if not isinstance(value, list):
        return value
    out = set()
    for item in value:
        if not isinstance(item, str):
            raise ValueError("capabilities are names such as NET_ADMIN")
        name = item.upper().removeprefix("CAP_")
        if name != "ALL" and name not in CAPABILITIES:
            raise ValueError(f"unknown capability {item!r}")
        out.add(name if name == "ALL" else "CAP_" + name)
    return sorted(out)


Capabilities = Annotated[
    list[str],
    BeforeValidator(_capabilities),
    WithJsonSchema({"type": "array", "items": {"type": "string", "description": "NET_ADMIN or CAP_NET_ADMIN, or ALL"}}),
]


def _env(value: Any) -> Any:
    """``["K=V"]`` or ``{K: V}``; a list item without ``=`` is an empty value."""
    if isinstance(value, list):
        out = {}
        for item in value:
            if not isinstance(item, str):
                raise ValueError("env list items are KEY=VALUE strings")
            key, _, val = item.partition("=")
            out[key] = val
        return out
    return value


def _env_keys(value: dict[str, str]) -> dict[str, str]:
    for key in value:
        if not key or "=" in key or "\0" in key:
            raise ValueError(f"invalid environment variable name {key!r}")
    return value


def _absolute(value: str | None) -> str | None:
    if value is not None and not value.startswith("/"):
        raise ValueError(f"{value!r} must be an absolute path")
    return posixpath.normpath(value) if value else value


def _command(value: Any) -> Any:
    """A string command runs through ``/bin/sh -c``, as Docker's shell form."""
    return ["/bin/sh", "-c", value] if isinstance(value, str) else value


Command = Annotated[
    list[str],
    BeforeValidator(_command),
    WithJsonSchema({"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}),
]


_NAMES = {"type": ["array", "string"], "items": {"type": "string"}, "description": "a name or a list of names"}


class ContainerSpec(Strict):
    """What one container runs; also a Service's replica template."""

    image: str = Field(description="an Image of this stack by name, or a full reference such as busybox:1.36")
    entrypoint: Command | None = Field(default=None, description="overrides the image's ENTRYPOINT")
    command: Command | None = Field(default=None, description="overrides the image's CMD")
    env: Annotated[
        dict[str, ScalarStr],
        BeforeValidator(_env),
        AlsoAccepts({"type": "array", "items": {"type": "string", "description": "KEY=VALUE"}}),
    ] = Field(default_factory=dict)
    env_file: Annotated[list[str], BeforeValidator(string_or_list), AlsoAccepts({"type": "string"})] = Field(
        default_factory=list, description="KEY=VALUE files relative to the manifest; env wins over them"
    )
    working_dir: str | None = None
    user: ScalarStr | None = Field(
        default=None, pattern=r"^[^:\s]+(:[^:\s]+)?$", description="uid[:gid] or name[:group]"
    )
    group_add: list[ScalarStr] = Field(default_factory=list, description="supplementary groups")
    hostname: DNSLabel | None = Field(default=None, description="defaults to the container's name")
    init: bool = Field(default=False, description="run a minimal init as pid 1 that reaps zombies")
    network_mode: Literal["bridge", "host", "none"] = "bridge"
    pid: Literal["private", "host"] = "private"
    ipc: Literal["private", "host"] = "private"
    ports: Ports = Field(default_factory=list)
    networks: Annotated[dict[DNSLabel, NetworkAttachment], BeforeValidator(_networks), AlsoAccepts(_NAMES)] = Field(
        default_factory=dict, description="networks of this stack to join; none: the default bridge"
    )
    volumes: list[Mount] = Field(default_factory=list)
    tmpfs: list[
        Annotated[
            TmpfsMount,
            BeforeValidator(parse_tmpfs),
            AlsoAccepts({"type": "string", "description": "/path[:size=64m,mode=1777]"}),
        ]
    ] = Field(default_factory=list)
    resources: Resources = Field(default_factory=Resources)
    restart: Restart = Field(default_factory=RestartPolicy)
    healthcheck: Healthcheck | None = None
    stop_signal: Annotated[str, BeforeValidator(_signal_name), AlsoAccepts({"type": "integer"})] | None = Field(
        default=None, description="the image's STOPSIGNAL, else SIGTERM, when unset"
    )
    stop_grace_period: Duration = Field(default=10.0, description="time between the stop signal and SIGKILL")
    read_only: bool = Field(default=False, description="mount the root filesystem read-only")
    cap_add: Capabilities = Field(default_factory=list)
    cap_drop: Capabilities = Field(default_factory=list)
    depends_on: Annotated[dict[DNSLabel, Dependency], BeforeValidator(_depends_on), AlsoAccepts(_NAMES)] = Field(
        default_factory=dict
    )

    _env_keys = field_validator("env")(_env_keys)
    _abs = field_validator("working_dir")(_absolute)

    @field_validator("volumes", "tmpfs")
    @classmethod
    def _targets_absolute(cls, value: list[Any]) -> list[Any]:
        for mount in value:
            if not mount.target.startswith("/"):
                raise ValueError(f"mount target {mount.target!r} must be an absolute path")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ContainerSpec:
        if self.network_mode != "bridge" and self.networks:
            raise ValueError(f"network_mode {self.network_mode} cannot be combined with networks")
        if self.network_mode != "bridge" and self.ports:
            raise ValueError(f"ports cannot be published with network_mode {self.network_mode}")
        targets: set[str] = set()
        for mount in [*self.volumes, *self.tmpfs]:
            target = posixpath.normpath(mount.target)
            if target in targets:
                raise ValueError(f"two mounts share the target {target}")
            targets.add(target)
        return self


class Container(Strict):
    apiVersion: Literal["reconcile/v1"] = API_VERSION
    kind: Literal["Container"] = "Container"
    metadata: Metadata
    spec: ContainerSpec
