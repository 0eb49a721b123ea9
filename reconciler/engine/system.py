"""System: what the engine is and holds, the disk it uses, and ``system prune``.

``info`` and ``df`` read the drivers (through ``engine.wiring``) and never import
pyroute2: networks are counted from the state database. ``prune`` goes through the
other groups (``engine.containers``, ``engine.networks``, ``engine.volumes``,
``engine.images``), so it takes their locks and refuses what they refuse.
"""

from __future__ import annotations

import contextlib
import os
import platform
import stat
from typing import TYPE_CHECKING

from reconciler.engine import errors

if TYPE_CHECKING:
    from reconciler.engine.core import Engine
    from reconciler.engine.models.system import (
        ContainerCounts,
        DiskUsage,
        SystemInfo,
        SystemPruneResult,
        UsageItem,
        VersionInfo,
    )

#: The native API's version: routes live under ``/v1``.
API_VERSION = "1"

#: ``platform.machine()`` as OCI platforms (and Docker) name architectures.
_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}


class System:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def version(self) -> VersionInfo:
        from reconciler import __version__

        return {
            "version": __version__,
            "api_version": API_VERSION,
            "python": platform.python_version(),
            "os": platform.system().lower(),
            "arch": _arch(),
        }

    def info(self) -> SystemInfo:
        from reconciler.runtime import cgroups

        wiring = self.engine.wiring
        counts: ContainerCounts = {"total": 0, "running": 0, "paused": 0, "exited": 0, "created": 0}
        for state in wiring.runtime().containers():
            counts["total"] += 1
            if state.status in ("running", "paused", "exited", "created"):
                counts[state.status] += 1
        try:
            cgroup_version: int | None = cgroups.version()
        except cgroups.CgroupError:
            cgroup_version = None
        version = self.version()
        return {
            "version": version["version"],
            "api_version": API_VERSION,
            "host": self.engine.host,
            "root": self.engine.config.root,
            "cgroup_parent": self.engine.config.cgroup_parent,
            "cgroup_version": cgroup_version,
            "containers": counts,
            "images": len({entry["manifest"] for entry in wiring.image_store().refs().values()}),
            "networks": len(wiring.state_db().list_networks()),
            "volumes": len(wiring.volumes().list()),
            "kernel": platform.release(),
            "os": version["os"],
            "arch": version["arch"],
            "cpus": os.cpu_count() or 1,
            "memory": _memory(),
            "python": version["python"],
        }

    def df(self) -> DiskUsage:
        """Bytes used by images (blobs and unpacked layers), containers (their
        directories: writable layer, logs, state) and volumes, and what pruning the
        unused ones would free."""
        wiring = self.engine.wiring
        runtime = wiring.runtime()
        states = runtime.containers()
        containers: UsageItem = {"count": len(states), "active": 0, "bytes": 0, "reclaimable": 0}
        used_images: set[str] = set()
        for state in states:
            size = disk_usage(runtime.store.path(state.name))
            containers["bytes"] += size
            if state.status in ("running", "paused"):
                containers["active"] += 1
            else:
                containers["reclaimable"] += size
            image = state.spec.get("image") if state.spec else None
            if isinstance(image, dict) and image.get("manifest"):
                used_images.add(str(image["manifest"]))
        return {"images": self._image_usage(used_images), "containers": containers, "volumes": self._volume_usage()}

    def _image_usage(self, used: set[str]) -> UsageItem:
        from reconciler.images.store import ImageError

        store = self.engine.wiring.image_store()
        manifests = {entry["manifest"] for entry in store.refs().values()}
        total = disk_usage(store.directory)
        live = 0
        seen: set[str] = set()
        for digest in sorted(used):
            with contextlib.suppress(ImageError, OSError):
                image = store.image_by_digest(digest, verify=False)
                for blob in (digest, image.config_digest, *(layer.digest for layer in image.layers)):
                    if blob not in seen:
                        seen.add(blob)
                        live += disk_usage(store.content.path(blob))
                for diff_id in image.diff_ids:
                    if diff_id not in seen:
                        seen.add(diff_id)
                        live += disk_usage(store.snapshot_path(diff_id))
        return {
            "count": len(manifests),
            "active": len(manifests & used),
            "bytes": total,
            "reclaimable": max(0, total - live),
        }

    def _volume_usage(self) -> UsageItem:
        volumes = self.engine.wiring.volumes()
        usage: UsageItem = {"count": 0, "active": 0, "bytes": 0, "reclaimable": 0}
        for volume in volumes.list():
            size = disk_usage(volumes.path(volume.name))
            usage["count"] += 1
            usage["bytes"] += size
            if volumes.in_use(volume.name):
                usage["active"] += 1
            else:
                usage["reclaimable"] += size
        return usage

    def prune(self, *, volumes: bool = False) -> SystemPruneResult:
        """Stopped containers, networks no container uses, blobs and layers no tag
        reaches, and with ``volumes`` unused anonymous volumes: removed, as ``docker
        system prune`` does (named volumes stay: ``volume prune -a`` removes them)."""
        engine = self.engine
        runtime = engine.wiring.runtime()
        removed: list[str] = []
        freed = 0
        for container in engine.containers.list(all=True):
            if container["status"] not in ("exited", "created"):
                continue
            size = disk_usage(runtime.store.path(container["name"]))
            try:
                engine.containers.remove(container["name"])
            except (errors.NotFound, errors.Conflict):
                continue  # gone or started meanwhile
            removed.append(container["name"])
            freed += size
        networks = engine.networks.prune()["removed"]
        pruned_volumes: list[str] = []
        if volumes:
            result = engine.volumes.prune()
            pruned_volumes = result["removed"]
            freed += result["reclaimed_bytes"]
        images = engine.images.prune()
        freed += images["bytes_freed"]
        return {
            "containers": removed,
            "networks": networks,
            "images": images["untagged"],
            "volumes": pruned_volumes,
            "bytes_freed": freed,
        }


def disk_usage(path: str) -> int:
    """Apparent bytes of the regular files at or under ``path``: hard links counted
    once, symlinks not followed, other filesystems (a mounted rootfs) not entered."""
    try:
        top = os.lstat(path)
    except OSError:
        return 0
    if not stat.S_ISDIR(top.st_mode):
        return top.st_size if stat.S_ISREG(top.st_mode) else 0
    total = 0
    seen: set[tuple[int, int]] = set()
    pending = [path]
    while pending:
        try:
            entries = os.scandir(pending.pop())
        except OSError:
            continue  # removed meanwhile, or unreadable
        with entries:
            for entry in entries:
                try:
                    info = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if stat.S_ISDIR(info.st_mode):
                    if info.st_dev == top.st_dev:
                        pending.append(entry.path)
                elif stat.S_ISREG(info.st_mode):
                    if info.st_nlink > 1:
                        if (info.st_dev, info.st_ino) in seen:
                            continue
                        seen.add((info.st_dev, info.st_ino))
                    total += info.st_size
    return total


def _arch() -> str:
    machine = platform.machine()
    return _ARCH.get(machine, machine)


def _memory() -> int:
    """Bytes of RAM (MemTotal), 0 when /proc/meminfo cannot be read."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0
