"""The process that stays with a detached container: it is the container's parent,
so the kernel tells it the exit status; it pumps stdout and stderr into the json-file
log, and when the container exits it records the exit code and OOM kill in the state
file and removes the cgroup. No engine process needs to be alive for any of that.

The engine forks the monitor, starts the container from it, and then the monitor
execs this file as ``python -S -I monitor.py …``: a fresh interpreter that imports
only the standard library and three small modules of ours, instead of a copy of the
engine with pydantic loaded (see ../shared/design/PERFORMANCE.md). Exec keeps the
children, so the container is still this process's child.
"""

from __future__ import annotations

import os
import select
import sys
import time


def main(argv: list[str]) -> int:
    state_root, name, outer_pid, out_fd, err_fd, cgroup_parent, *rest = argv
    cgroup = rest[0] if rest else name  # the container's ID's group; its name's before IDs existed
    # While the container runs, only the log writer is needed: the rest is imported
    # once it exited, so the monitor stays small for the container's whole life.
    from reconciler.runtime import logs

    log = logs.LogWriter(os.path.join(state_root, "containers", name, "container.log"))
    streams: dict[int, logs.Stream] = {int(out_fd): "stdout"}
    if int(err_fd) >= 0:  # a terminal (-t) is one stream, logged as stdout
        streams[int(err_fd)] = "stderr"
    exited: int | None = None
    while streams:
        ready, _, _ = select.select(list(streams), [], [], 0.5)
        for fd in ready:
            try:
                data = os.read(fd, 65536)
            except OSError:  # EIO: a pty master whose last slave closed
                data = b""
            if data:
                log.write(streams[fd], data)
            else:
                os.close(fd)
                del streams[fd]
        if exited is None:
            pid, status = os.waitpid(int(outer_pid), os.WNOHANG)
            if pid:
                exited = status
                if not ready:  # nothing left to read right now: the pipes die with the namespace
                    break
    if exited is None:
        _, exited = os.waitpid(int(outer_pid), 0)
    log.close()
    from reconciler.runtime import cgroups, state

    store = state.StateStore(state_root)
    code = os.waitstatus_to_exitcode(exited)
    group = cgroups.new_cgroup(cgroup, parent=cgroup_parent)
    oom = False
    for _ in range(200):  # the namespace's other processes die with its pid 1, a moment later
        if not group.exists():
            break
        try:
            oom = oom or group.stats().oom_kills > 0
            group.destroy()
            break
        except cgroups.CgroupError:
            time.sleep(0.01)
    record = store.read(name)
    if record is not None:
        record.status = "exited"
        record.exit_code = 128 - code if code < 0 else code
        record.oom_killed = oom
        record.finished_at = time.time()
        store.write(record, create=False)  # a container removed meanwhile stays removed
    return 0


if __name__ == "__main__":
    # run as a file under -S -I: find our package next to this file, nothing else
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    raise SystemExit(main(sys.argv[1:]))
