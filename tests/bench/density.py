#!/usr/bin/env python3
"""Memory the engine keeps per running container: PSS of each container's helpers.

    sudo .venv/bin/python tests/bench/density.py [--containers 50]

Starts N idle busybox containers (`sleep`) detached and reads ``Pss`` and ``Rss``
from ``/proc/PID/smaps_rollup`` of every monitor, and of any process between the
monitor and the container's pid 1 (none: the monitor forks pid 1 itself). Prints a
table, then stops and removes everything. Peers measured on this machine kind
(../shared/design/PERFORMANCE.md): docker's shim about 13 MiB per container,
podman's conmon about 2 MiB. Target: at most 4 MiB.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

from reconciler.runtime import cgroups, linux, spawn  # noqa: E402
from reconciler.runtime.containers import Runtime  # noqa: E402


def rollup(pid: int) -> dict[str, int]:
    out = {}
    with open(f"/proc/{pid}/smaps_rollup") as handle:
        for line in handle:
            parts = line.split()
            if len(parts) == 3 and parts[2] == "kB":
                out[parts[0].rstrip(":")] = int(parts[1])
    return out


def parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as handle:
        return int(handle.read().rsplit(")", 1)[1].split()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--containers", type=int, default=50)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root")
    linux.prctl(linux.PR_SET_CHILD_SUBREAPER, 1)  # reap the monitors ourselves
    with tempfile.TemporaryDirectory(prefix="reconcile-bench-") as directory:
        rootfs = os.path.join(directory, "rootfs")
        os.makedirs(os.path.join(rootfs, "bin"))
        os.chmod(rootfs, 0o755)
        shutil.copy("/bin/busybox", os.path.join(rootfs, "bin", "busybox"))
        os.symlink("busybox", os.path.join(rootfs, "bin", "sleep"))
        runtime = Runtime(os.path.join(directory, "state"), cgroup_parent=f"reconcile-bench-{uuid.uuid4().hex[:8]}")
        names = [f"idle-{i}" for i in range(args.containers)]
        try:
            for name in names:
                runtime.create(name, spawn.Config(rootfs=rootfs, argv=["sleep", "3600"]), cgroups.Limits(pids=8))
                runtime.start(name)
            states = [runtime.inspect(name) for name in names]
            monitors = [rollup(state.monitor_pid) for state in states]
            # any process between the monitor and the container's pid 1 is a helper too
            outers = [rollup(parent_of(s.pid)) for s in states if parent_of(s.pid) != s.monitor_pid]
        finally:
            for name in names:
                if runtime.store.read(name) is not None:
                    runtime.stop(name, grace=0)
                    runtime.delete(name)
            for parent in cgroups.new_cgroup("x", parent=runtime.cgroup_parent).parent_dirs():
                if os.path.isdir(parent):
                    os.rmdir(parent)
            while True:
                try:
                    if os.waitpid(-1, os.WNOHANG)[0] == 0:
                        break
                except ChildProcessError:
                    break
    pss = [m["Pss"] / 1024 for m in monitors]
    rss = [m["Rss"] / 1024 for m in monitors]
    print("| per running container | median | max |")
    print("|---|---:|---:|")
    print(f"| monitor PSS | {statistics.median(pss):.1f} MiB | {max(pss):.1f} MiB |")
    print(f"| monitor RSS | {statistics.median(rss):.1f} MiB | {max(rss):.1f} MiB |")
    if outers:  # a process between the monitor and the container's pid 1
        opss = [o["Pss"] / 1024 for o in outers]
        print(f"| outer process PSS | {statistics.median(opss):.1f} MiB | {max(opss):.1f} MiB |")
        total = [a + b for a, b in zip(pss, opss, strict=True)]
        print(f"| helpers PSS in all | {statistics.median(total):.1f} MiB | {max(total):.1f} MiB |")
    print(f"\n{args.containers} idle containers; monitor = python -S -I monitor.py ({sys.version.split()[0]})")


if __name__ == "__main__":
    main()
