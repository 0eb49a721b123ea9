"""Container state on disk: ``ROOT/containers/NAME/state.json``, written atomically.

Nothing about a container lives only in memory: the engine, the monitor and any
later engine process read and write the same file, so a container is found again
(running, exited, or gone) from the state directory and the kernel alone.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Status = Literal["created", "running", "paused", "exited"]


@dataclass
class ContainerState:
    name: str
    status: Status = "created"
    pid: int = 0  # the container's pid 1 as the host sees it
    pid_start: int = 0  # its start time in clock ticks: tells a reused pid apart
    monitor_pid: int = 0
    exit_code: int | None = None
    oom_killed: bool = False
    error: str | None = None
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    spec: dict[str, Any] = field(default_factory=dict)


def process_start(pid: int) -> int:
    """Field 22 of /proc/PID/stat, or 0 when the process is gone (a zombie is gone too:
    it has exited and only waits to be reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0
    return 0 if fields[0] in ("Z", "X") else int(fields[19])


class StateStore:
    def __init__(self, root: str) -> None:
        self.directory = os.path.join(root, "containers")

    def path(self, name: str, *parts: str) -> str:
        return os.path.join(self.directory, name, *parts)

    def write(self, state: ContainerState) -> None:
        """Write to a temporary file, fsync, rename: a reader never sees half a state."""
        os.makedirs(self.path(state.name), exist_ok=True)
        target = self.path(state.name, "state.json")
        temporary = f"{target}.{os.getpid()}.tmp"
        with open(temporary, "w") as handle:
            json.dump(asdict(state), handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)

    def read(self, name: str) -> ContainerState | None:
        try:
            with open(self.path(name, "state.json")) as handle:
                return ContainerState(**json.load(handle))
        except FileNotFoundError:
            return None

    def names(self) -> list[str]:
        try:
            return sorted(n for n in os.listdir(self.directory) if os.path.exists(self.path(n, "state.json")))
        except FileNotFoundError:
            return []

    def remove(self, name: str) -> None:
        shutil.rmtree(self.path(name), ignore_errors=True)
