"""System: what an engine is and holds (``info``, ``version``), the disk it uses
(``df``), and clearing out what nothing uses (``prune``)."""

from __future__ import annotations

from typing import Protocol, TypedDict


class ContainerCounts(TypedDict):
    total: int
    running: int
    paused: int
    exited: int
    created: int


class SystemInfo(TypedDict):
    """``reconcile info``: the engine, its root, and counts of what it holds."""

    version: str
    api_version: str
    host: str  # "local" (in-process), or where the agent answers (its socket)
    root: str
    cgroup_parent: str
    cgroup_version: int | None  # 1 or 2 (None: no usable memory controller)
    containers: ContainerCounts
    images: int  # distinct images (manifests) tagged in the store
    networks: int
    volumes: int
    kernel: str
    os: str
    arch: str
    cpus: int
    memory: int  # bytes of RAM
    python: str


class VersionInfo(TypedDict):
    version: str
    api_version: str  # the native API's version ("1": routes under /v1)
    python: str
    os: str
    arch: str  # as OCI platforms name it (amd64, arm64)


class UsageItem(TypedDict):
    """One kind of object on disk, as ``docker system df`` shows it."""

    count: int
    active: int  # images used by a container, running or paused containers, volumes mounted
    bytes: int  # apparent size of their files (hard links counted once)
    reclaimable: int  # bytes that pruning what is not active would free


class DiskUsage(TypedDict):
    images: UsageItem
    containers: UsageItem
    volumes: UsageItem


class SystemPruneResult(TypedDict):
    containers: list[str]  # stopped containers removed
    networks: list[str]  # networks no container used
    images: list[str]  # with the blobs no tag reaches: tags removed (none unless asked; kept for the shape)
    volumes: list[str]  # unused anonymous volumes (only with volumes=True)
    bytes_freed: int


class SystemAPI(Protocol):
    def info(self) -> SystemInfo: ...

    def version(self) -> VersionInfo: ...

    def df(self) -> DiskUsage: ...

    def prune(self, *, volumes: bool = False) -> SystemPruneResult: ...
