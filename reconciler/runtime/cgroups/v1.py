"""cgroup v1: one hierarchy per controller (memory, cpu, cpuacct, cpuset, pids, freezer).

A group is one directory per hierarchy, all named ``reconcile/NAME``; hierarchies
may be co-mounted (``cpu,cpuacct``), which ``_dirs`` handles by resolving each
controller's directory and de-duplicating.
"""

from __future__ import annotations

import os

from reconciler.runtime.cgroups import (
    CPU_PERIOD_US,
    DEFAULT_ROOT,
    PARENT,
    CgroupError,
    Limits,
    Stats,
    read,
    read_int,
    remove_dir,
    write,
)

CONTROLLERS = ("memory", "cpu", "cpuacct", "cpuset", "pids", "freezer")
UNLIMITED = "-1"


class Cgroup1:
    def __init__(self, name: str, *, root: str = DEFAULT_ROOT, parent: str = PARENT) -> None:
        self.name = name
        self.root = root
        self.parent = parent

    def _dir(self, controller: str) -> str:
        return os.path.join(self.root, controller, self.parent, self.name)

    def _dirs(self) -> list[str]:
        """This group's directory in each mounted hierarchy, once per real hierarchy."""
        seen: set[str] = set()
        out = []
        for controller in CONTROLLERS:
            mount = os.path.join(self.root, controller)
            if not os.path.isdir(mount):
                continue
            real = os.path.realpath(mount)
            if real not in seen:
                seen.add(real)
                out.append(self._dir(controller))
        return out

    def _file(self, controller: str, name: str) -> str:
        return os.path.join(self._dir(controller), name)

    def create(self) -> None:
        for directory in self._dirs():
            os.makedirs(directory, exist_ok=True)
        cpuset = os.path.join(self.root, "cpuset")
        if os.path.isdir(cpuset):
            # a new cpuset starts empty and refuses tasks: inherit the parent's at each level
            for level in (os.path.join(cpuset, self.parent), self._dir("cpuset")):
                parent = os.path.dirname(level)
                for name in ("cpuset.cpus", "cpuset.mems"):
                    if not read(os.path.join(level, name)):
                        write(os.path.join(level, name), read(os.path.join(parent, name)))

    def set(self, limits: Limits) -> None:
        memory = str(limits.memory) if limits.memory is not None else UNLIMITED
        memsw = self._file("memory", "memory.memsw.limit_in_bytes")
        has_swap_accounting = os.path.exists(memsw)
        if limits.memory_swap is not None and has_swap_accounting:
            swap = str(limits.memory_swap)
        elif limits.memory is not None:
            swap = str(2 * limits.memory)  # Docker: swap as large as memory when only memory is set
        else:
            swap = UNLIMITED
        # memsw must stay >= memory at every step: lift memsw first, then set memory, then memsw
        if has_swap_accounting:
            write(memsw, UNLIMITED)
        write(self._file("memory", "memory.limit_in_bytes"), memory)
        if has_swap_accounting:
            write(memsw, swap)
        reservation = str(limits.memory_reservation) if limits.memory_reservation is not None else UNLIMITED
        write(self._file("memory", "memory.soft_limit_in_bytes"), reservation)
        quota = UNLIMITED if limits.cpus is None else str(round(limits.cpus * CPU_PERIOD_US))
        write(self._file("cpu", "cpu.cfs_period_us"), str(CPU_PERIOD_US))
        write(self._file("cpu", "cpu.cfs_quota_us"), quota)
        write(self._file("cpu", "cpu.shares"), str(limits.cpu_shares or 1024))
        if limits.cpuset is not None:
            write(self._file("cpuset", "cpuset.cpus"), limits.cpuset)
        write(self._file("pids", "pids.max"), str(limits.pids) if limits.pids is not None else "max")

    def add(self, pid: int) -> None:
        for directory in self._dirs():
            write(os.path.join(directory, "cgroup.procs"), str(pid))

    def pids(self) -> list[int]:
        return [int(p) for p in read(self._file("pids", "cgroup.procs")).split()]

    def stats(self) -> Stats:
        oom = dict(
            line.split(" ", 1) for line in read(self._file("memory", "memory.oom_control")).splitlines() if " " in line
        )
        return Stats(
            memory_usage=read_int(self._file("memory", "memory.usage_in_bytes")) or 0,
            memory_peak=read_int(self._file("memory", "memory.max_usage_in_bytes")),
            cpu_usage_ns=read_int(self._file("cpuacct", "cpuacct.usage")) or 0,
            pids=read_int(self._file("pids", "pids.current")) or 0,
            oom_kills=int(oom.get("oom_kill", "0")),
        )

    def _freezer(self, state: str) -> None:
        path = self._file("freezer", "freezer.state")
        write(path, state)

    def freeze(self) -> None:
        self._freezer("FROZEN")

    def thaw(self) -> None:
        self._freezer("THAWED")

    def exists(self) -> bool:
        return os.path.isdir(self._dir("memory"))

    def destroy(self) -> None:
        errors = []
        for directory in self._dirs():
            try:
                remove_dir(directory)
            except CgroupError as exc:
                errors.append(str(exc))
        if errors:
            raise CgroupError("; ".join(errors))

    def parent_dirs(self) -> list[str]:
        return [os.path.dirname(directory) for directory in self._dirs()]
