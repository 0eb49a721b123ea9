"""One container's cgroup, behind one interface for cgroup v1 and v2.

A ``Cgroup`` is a named group of processes with resource limits: made with
``new_cgroup(name)``, limited with ``set``, joined with ``add``, read with
``stats``, frozen and thawed, and removed with ``destroy`` once empty. Callers
never branch on the version: ``new_cgroup`` picks the driver from what is mounted
(``v2.py`` on unified hosts, ``v1.py`` where memory, cpu and pids are separate
hierarchies, as on hybrid hosts whose v2 mount holds no controllers).

Worked example::

    group = new_cgroup("web-1")                    # /sys/fs/cgroup/…/reconcile/web-1
    group.set(Limits(memory=256 << 20, cpus=0.5, pids=64))
    group.add(pid)                                 # before the container's process execs
    group.stats().memory_usage
    group.destroy()                                # after the last process exited

``root`` moves the whole cgroupfs, so tests run the v2 driver against a temporary
tree where the host has no v2 controllers.
"""

from __future__ import annotations

import os
from typing import NamedTuple, Protocol

DEFAULT_ROOT = "/sys/fs/cgroup"
#: Every cgroup reconcile makes lives below this directory of each hierarchy.
PARENT = "reconcile"
#: The CFS period Docker uses; the quota is cpus x period.
CPU_PERIOD_US = 100_000


class Limits(NamedTuple):
    """Resource limits; None leaves a limit unset (the kernel's default: unlimited).

    ``memory_swap`` is memory plus swap, as in Docker; ``cpu_shares`` is the v1
    weight (2-262144), converted to ``cpu.weight`` on v2.
    """

    memory: int | None = None
    memory_swap: int | None = None
    memory_reservation: int | None = None
    cpus: float | None = None
    cpu_shares: int | None = None
    cpuset: str | None = None
    pids: int | None = None


class Stats(NamedTuple):
    """What the kernel reports for the group. ``memory_peak`` is None where the
    kernel keeps no peak (v2 before Linux 5.19)."""

    memory_usage: int
    memory_peak: int | None
    cpu_usage_ns: int
    pids: int
    oom_kills: int


class CgroupError(Exception):
    """A cgroup operation failed; the message names the group and the file."""


class Cgroup(Protocol):
    name: str

    def create(self) -> None:
        """Make the group (idempotent)."""

    def set(self, limits: Limits) -> None:
        """Apply ``limits``; unset ones are lifted."""

    def add(self, pid: int) -> None:
        """Move ``pid`` (and its future children) into the group."""

    def pids(self) -> list[int]:
        """Processes in the group now."""

    def stats(self) -> Stats: ...

    def freeze(self) -> None: ...

    def thaw(self) -> None: ...

    def exists(self) -> bool: ...

    def destroy(self) -> None:
        """Remove the group; it must be empty. Missing is fine (idempotent)."""

    def parent_dirs(self) -> list[str]:
        """The ``parent`` directory in each hierarchy (shared by all groups; never removed by ``destroy``)."""


def version(root: str = DEFAULT_ROOT) -> int:
    """2 when the unified hierarchy at ``root`` has the memory controller, else 1."""
    try:
        with open(os.path.join(root, "cgroup.controllers")) as handle:
            if "memory" in handle.read().split():
                return 2
    except OSError:
        pass
    if os.path.isdir(os.path.join(root, "memory")):
        return 1
    raise CgroupError(f"no cgroup v2 memory controller and no v1 memory hierarchy under {root}")


def new_cgroup(name: str, *, root: str = DEFAULT_ROOT, parent: str = PARENT) -> Cgroup:
    """The driver for this host's cgroup version; the group is ``parent/name`` in each hierarchy."""
    if version(root) == 2:
        from reconciler.runtime.cgroups import v2

        return v2.Cgroup2(name, root=root, parent=parent)
    from reconciler.runtime.cgroups import v1

    return v1.Cgroup1(name, root=root, parent=parent)


def write(path: str, value: str) -> None:
    """Write one cgroup file, with an error that names it."""
    try:
        with open(path, "w") as handle:
            handle.write(value)
    except OSError as exc:
        raise CgroupError(f"writing {value!r} to {path}: {exc.strerror}") from None


def read(path: str) -> str:
    try:
        with open(path) as handle:
            return handle.read().strip()
    except OSError as exc:
        raise CgroupError(f"reading {path}: {exc.strerror}") from None


def read_int(path: str, default: int | None = None) -> int | None:
    """An integer file; ``default`` when the kernel does not have the file."""
    if default is not None and not os.path.exists(path):
        return default
    text = read(path)
    return None if text == "max" else int(text)


def remove_dir(path: str) -> None:
    """rmdir a cgroup (its interface files go with it); missing is fine, busy is an error."""
    try:
        os.rmdir(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise CgroupError(f"removing {path}: {exc.strerror} (processes still in it?)") from None


def keyed(path: str) -> dict[str, int]:
    """A ``key value`` per line file such as ``memory.events`` or ``cpu.stat``."""
    out: dict[str, int] = {}
    for line in read(path).splitlines():
        key, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            out[key] = int(value)
    return out
