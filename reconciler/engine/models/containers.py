"""Containers: what ``run``/``create`` take, what ``ps``, ``logs`` and ``stats`` give.

No ``from __future__ import annotations`` here: a TypedDict or NamedTuple turns each
string annotation into a ForwardRef, compiling it, which made importing this module
(``reconcile run``'s path) cost 3 ms instead of 1.
"""

import builtins
from collections.abc import Callable, Iterator
from typing import Any, Literal, NamedTuple, NotRequired, Protocol, Required, TypedDict

NamespaceMode = Literal["private", "host"]


class RunRequest(TypedDict, total=False):
    """``docker run``'s flags, by their long names. Paths are the caller's: a remote
    client resolves relative bind sources (``-v ./data:/d``) before sending."""

    image: Required[str]
    command: list[str]
    name: str | None
    hostname: str | None
    env: list[str]  # KEY=VALUE
    user: str | None
    workdir: str | None
    entrypoint: str | None  # "" clears the image's
    read_only: bool
    cap_add: list[str]
    cap_drop: list[str]
    volumes: list[str]  # NAME:/p[:ro], /host:/p[:ro], /p
    tmpfs: list[str]  # /p[:size=64m,mode=1777]
    interactive: bool
    tty: bool
    init: bool
    stop_signal: str | None
    networks: list[str]  # none (default), host, or bridge network names
    network_aliases: list[str]
    ip: str | None
    publish: list[str]  # [IP:]HOST:CONTAINER[/udp]
    pid: NamespaceMode
    ipc: NamespaceMode
    uts: NamespaceMode
    memory: str | None
    memory_swap: str | None
    cpus: str | None
    cpu_shares: int | None
    cpuset_cpus: str | None
    pids_limit: int | None
    remove: bool  # --rm: gone (with its anonymous volumes) once it exits
    labels: dict[str, str]


class ExecRequest(TypedDict, total=False):
    command: Required[list[str]]
    interactive: bool
    tty: bool
    env: list[str]
    workdir: str | None
    user: str | None


class ContainerRef(TypedDict):
    name: str
    id: NotRequired[str]  # 64 hex characters (``create`` answers it; an older agent may not)


class PortSummary(TypedDict):
    """One published port: ``host_ip:host_port`` → ``container_port/protocol``."""

    host_ip: str  # 0.0.0.0: every address of the host
    host_port: int
    container_port: int
    protocol: str  # tcp, udp


class ContainerSummary(TypedDict):
    """One row of ``ps``. The fields after ``stack`` are what ``ps``'s columns, filters
    and ``--format`` need; an older agent may not send them."""

    name: str
    status: str  # created, running, paused, exited
    id: NotRequired[str]  # 64 hex characters, made at create; an older agent sends none
    pid: int
    exit_code: int | None
    image: str
    command: list[str]
    created: float  # seconds since the epoch
    stack: NotRequired[str | None]
    image_id: NotRequired[str]  # sha256:… of the image's config
    started: NotRequired[float | None]  # seconds since the epoch, the last start
    finished: NotRequired[float | None]  # the last exit
    labels: NotRequired[dict[str, str]]
    ports: NotRequired[list[PortSummary]]
    networks: NotRequired[list[str]]
    mounts: NotRequired[list[str]]  # as run -v writes them: NAME:/dest (a volume), /source:/dest, then :ro


class LogEntry(TypedDict):
    stream: Literal["stdout", "stderr"]
    time_ns: int
    text: str


class ContainerStats(TypedDict):
    name: str
    memory_usage: int
    memory_peak: int | None  # None where the kernel keeps no peak
    memory_limit: int | None
    cpu_seconds: float
    pids: int


class WaitResult(TypedDict):
    name: str
    exit_code: int


class Stdio(NamedTuple):
    """File descriptors an attached ``run`` or ``exec`` reads and writes: the caller's
    own (a terminal, or pipes). In-process they go to the container as they are;
    through an agent the client pumps them over an upgraded connection.

    ``exited`` hears an attached ``run``'s exit code as soon as it is final, before
    ``--rm``'s cleanup (the directory is already out of sight and the name free,
    its files are deleted afterwards): the agent sends the exit to its client then,
    so a removal never delays the answer. The fds are the first three fields."""

    stdin: int = 0
    stdout: int = 1
    stderr: int = 2
    exited: Callable[[int], None] | None = None


class ContainersAPI(Protocol):
    """What every front end may do to containers. A container is named by its name,
    its 64-hex ID or a prefix of the ID that no other container's ID starts with (Docker's
    rule: an exact name first, then a full ID, then a unique prefix; an ambiguous prefix
    is NotFound naming it). Results name it by its name.

    Lifecycle: ``create`` (status created) → ``start`` (running; a monitor outlives
    the caller and records the exit) → ``stop``/``kill`` (exited) → ``remove``.
    ``run`` is create + start; attached (not ``detach``) it waits and returns the
    exit code, with ``stdio`` connected to the container's process."""

    def create(self, request: RunRequest) -> ContainerRef: ...

    def start(self, name: str) -> ContainerRef: ...

    def run(self, request: RunRequest, stdio: Stdio | None = None, *, detach: bool = False) -> WaitResult: ...

    def stop(self, name: str, *, grace: float = 10.0) -> ContainerRef: ...

    def kill(self, name: str, *, signal: str = "KILL") -> ContainerRef: ...

    def pause(self, name: str) -> ContainerRef: ...

    def unpause(self, name: str) -> ContainerRef: ...

    def remove(self, name: str, *, force: bool = False) -> ContainerRef: ...

    def inspect(self, name: str) -> dict[str, Any]: ...

    def list(self, *, all: bool = False) -> list[ContainerSummary]: ...

    def logs(
        self, name: str, *, follow: bool = False, tail: int | None = None, since_ns: int | None = None
    ) -> Iterator[LogEntry]: ...

    def exec(self, name: str, request: ExecRequest, stdio: Stdio | None = None) -> WaitResult: ...

    def stats(self, names: builtins.list[str] | None = None) -> builtins.list[ContainerStats]: ...

    def wait(self, name: str) -> WaitResult: ...
