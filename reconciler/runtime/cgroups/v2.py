"""cgroup v2: one unified hierarchy; controllers enabled per level in ``cgroup.subtree_control``."""

from __future__ import annotations

import os

from reconciler.runtime.cgroups import (
    CPU_PERIOD_US,
    DEFAULT_ROOT,
    PARENT,
    Limits,
    Stats,
    keyed,
    read,
    read_int,
    remove_dir,
    write,
)

CONTROLLERS = ("cpuset", "cpu", "memory", "pids")


def shares_to_weight(shares: int) -> int:
    """v1 ``cpu.shares`` (2-262144) → v2 ``cpu.weight`` (1-10000), as runc converts."""
    return 1 + ((shares - 2) * 9999) // 262142


class Cgroup2:
    def __init__(self, name: str, *, root: str = DEFAULT_ROOT, parent: str = PARENT) -> None:
        self.name = name
        self.root = root
        self.parent = os.path.join(root, parent)
        self.path = os.path.join(self.parent, name)

    def _file(self, name: str) -> str:
        return os.path.join(self.path, name)

    def _enable_controllers(self, directory: str) -> None:
        """Delegate our controllers to the children of ``directory``."""
        available = read(os.path.join(directory, "cgroup.controllers")).split()
        wanted = [c for c in CONTROLLERS if c in available]
        if wanted:
            write(os.path.join(directory, "cgroup.subtree_control"), " ".join(f"+{c}" for c in wanted))

    def create(self) -> None:
        if not os.path.isdir(self.parent):
            os.makedirs(self.parent, exist_ok=True)
        if not os.path.exists(os.path.join(self.parent, "cgroup.controllers")):
            # a real cgroupfs makes this file itself; a test tree inherits the root's
            write(os.path.join(self.parent, "cgroup.controllers"), read(os.path.join(self.root, "cgroup.controllers")))
        self._enable_controllers(self.root)
        self._enable_controllers(self.parent)
        os.makedirs(self.path, exist_ok=True)

    def set(self, limits: Limits) -> None:
        memory = limits.memory
        write(self._file("memory.max"), str(memory) if memory is not None else "max")
        if limits.memory_reservation is not None:
            write(self._file("memory.low"), str(limits.memory_reservation))
        if os.path.exists(self._file("memory.swap.max")) or limits.memory_swap is not None:
            if memory is not None and limits.memory_swap is not None:
                swap = str(max(0, limits.memory_swap - memory))
            elif memory is not None:
                swap = str(memory)  # Docker: swap as large as memory when only memory is set
            else:
                swap = "max"
            write(self._file("memory.swap.max"), swap)
        quota = "max" if limits.cpus is None else str(round(limits.cpus * CPU_PERIOD_US))
        write(self._file("cpu.max"), f"{quota} {CPU_PERIOD_US}")
        weight = 100 if limits.cpu_shares is None else shares_to_weight(limits.cpu_shares)
        write(self._file("cpu.weight"), str(weight))
        if limits.cpuset is not None:
            write(self._file("cpuset.cpus"), limits.cpuset)
        write(self._file("pids.max"), str(limits.pids) if limits.pids is not None else "max")

    def add(self, pid: int) -> None:
        write(self._file("cgroup.procs"), str(pid))

    def pids(self) -> list[int]:
        return [int(p) for p in read(self._file("cgroup.procs")).split()]

    def stats(self) -> Stats:
        cpu = keyed(self._file("cpu.stat"))
        events = keyed(self._file("memory.events")) if os.path.exists(self._file("memory.events")) else {}
        peak = self._file("memory.peak")
        return Stats(
            memory_usage=read_int(self._file("memory.current")) or 0,
            memory_peak=read_int(peak) if os.path.exists(peak) else None,
            cpu_usage_ns=cpu.get("usage_usec", 0) * 1000,
            pids=read_int(self._file("pids.current")) or 0,
            oom_kills=events.get("oom_kill", 0),
        )

    def freeze(self) -> None:
        write(self._file("cgroup.freeze"), "1")

    def thaw(self) -> None:
        write(self._file("cgroup.freeze"), "0")

    def exists(self) -> bool:
        return os.path.isdir(self.path)

    def destroy(self) -> None:
        remove_dir(self.path)

    def parent_dirs(self) -> list[str]:
        return [self.parent]
