#!/usr/bin/env python3
"""Start latency of a container running `true`, through the runtime API in a warm
process, against peers on the same busybox rootfs; prints a table.

    sudo .venv/bin/python tests/bench/start_latency.py [--runs 20]

Ours: ``spawn.run`` (fork, cgroup join, six namespaces, private mounts, /proc, /dev,
/sys, pivot_root, masked paths, capabilities, exec) with an overlay root and a
memory cgroup, as a container gets it. Peers, each where installed: ``unshare(1)``
of the same namespaces (no rootfs work: a floor), ``runc run`` and ``crun run`` of an
OCI bundle (``../shared/bench/peers.sh setup`` installs them; crun needs the v1-only
mount namespace that script makes). Not part of the test suite; needs root.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

from reconciler.runtime import cgroups, process, spawn  # noqa: E402


def busybox_rootfs(directory: str) -> str:
    root = os.path.join(directory, "rootfs")
    os.makedirs(os.path.join(root, "bin"))
    os.chmod(root, 0o755)
    shutil.copy("/bin/busybox", os.path.join(root, "bin", "busybox"))
    for applet in ("sh", "true"):
        os.symlink("busybox", os.path.join(root, "bin", applet))
    return root


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def time_runs(runs: int, once) -> list[float]:
    once()  # warm-up
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        once()
        out.append((time.perf_counter() - start) * 1000)
    return out


def ours(directory: str, rootfs: str, runs: int) -> list[float]:
    group = cgroups.new_cgroup("bench", parent=f"reconcile-bench-{uuid.uuid4().hex[:8]}")
    group.create()
    group.set(cgroups.Limits(memory=64 << 20, pids=64))
    caps = process.capabilities(add=[], drop=[], all_caps=frozenset())
    env = process.environment(image_env=[], env={}, hostname="bench", home="/root")

    def once() -> None:
        scratch = tempfile.mkdtemp(dir=directory)
        upper, work, merged = (os.path.join(scratch, d) for d in ("upper", "work", "merged"))
        for path in (upper, work, merged):
            os.mkdir(path)
        overlay = spawn.Overlay(layers=(rootfs,), upper=upper, work=work)
        config = spawn.Config(rootfs=merged, argv=["true"], env=env, capabilities=caps, overlay=overlay)
        if spawn.run(config, cgroup=group) != 0:
            raise SystemExit("our container failed")
        shutil.rmtree(scratch)

    try:
        return time_runs(runs, once)
    finally:
        group.destroy()
        for parent in group.parent_dirs():
            os.rmdir(parent)


def cli(directory: str, rootfs: str, runs: int) -> list[float]:
    """The whole command, interpreter start included, on a one-layer image of the rootfs."""
    import tarfile

    from reconciler.images.store import ImageStore

    tarball = os.path.join(directory, "busybox.tar")
    with tarfile.open(tarball, "w") as archive:
        archive.add(rootfs, arcname=".")
    root = os.path.join(directory, "cli-root")
    ImageStore(root).import_tarball(tarball, "bench:latest")
    parent = f"reconcile-bench-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "RECONCILE_ROOT": root, "RECONCILE_CGROUP_PARENT": parent}
    argv = [sys.executable, "-m", "reconciler", "run", "--rm", "bench:latest", "true"]
    try:
        return time_runs(runs, lambda: subprocess.run(argv, check=True, env=env))
    finally:
        for directory_ in cgroups.new_cgroup("x", parent=parent).parent_dirs():
            if os.path.isdir(directory_):
                os.rmdir(directory_)


def command(argv: list[str], runs: int) -> list[float]:
    return time_runs(runs, lambda: subprocess.run(argv, check=True, stdout=subprocess.DEVNULL))


def oci_bundle(directory: str, rootfs: str) -> str | None:
    runc = shutil.which("runc")
    if runc is None:
        return None
    bundle = os.path.join(directory, "bundle")
    os.makedirs(bundle)
    subprocess.run([runc, "spec"], cwd=bundle, check=True)
    import json

    with open(os.path.join(bundle, "config.json")) as handle:
        spec = json.load(handle)
    spec["process"]["terminal"] = False
    spec["process"]["args"] = ["/bin/true"]
    spec["root"] = {"path": rootfs, "readonly": True}
    with open(os.path.join(bundle, "config.json"), "w") as handle:
        json.dump(spec, handle)
    return bundle


#: What ../shared/bench/peers.sh setup leaves running or made (see PEERS.md there).
CRUN_MNTNS = "/tmp/peer-mntns"
DOCKER_SOCKET = "/tmp/peer-docker.sock"
PODMAN_DIR = "/tmp/peer-podman"


def daemon_peers(runs: int) -> list[tuple[str, list[float]]]:
    """docker and podman on the busybox:local image peers.sh imported, when set up."""
    rows = []
    if os.path.exists(DOCKER_SOCKET) and os.path.exists("/usr/bin/docker"):
        argv = ["/usr/bin/docker", "-H", f"unix://{DOCKER_SOCKET}", "run", "--rm", "--network", "none"]
        rows.append(("docker run --rm --network none", command([*argv, "busybox:local", "true"], runs)))
    if shutil.which("podman") and os.path.exists(os.path.join(PODMAN_DIR, "containers.conf")):
        os.environ["CONTAINERS_CONF"] = os.path.join(PODMAN_DIR, "containers.conf")
        os.environ["CONTAINERS_STORAGE_CONF"] = os.path.join(PODMAN_DIR, "storage.conf")
        argv = ["podman", "run", "--rm", "--network", "none", "busybox:local", "true"]
        rows.append(("podman run --rm --network none (runc)", command(argv, runs)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root")
    rows: list[tuple[str, list[float]]] = []
    with tempfile.TemporaryDirectory(prefix="reconcile-bench-") as directory:
        rootfs = busybox_rootfs(directory)
        rows.append(("reconcile runtime API (warm process, overlay + cgroup)", ours(directory, rootfs, args.runs)))
        rows.append(("`reconcile run --rm IMG true` (CLI, fresh process)", cli(directory, rootfs, args.runs)))
        unshare = shutil.which("unshare")
        if unshare:
            argv = [unshare, "--mount", "--uts", "--ipc", "--net", "--pid", "--fork", "--cgroup", "/bin/true"]
            rows.append(("unshare(1), same namespaces, no rootfs (floor)", command(argv, args.runs)))
        bundle = oci_bundle(directory, rootfs)
        if bundle:
            name = f"bench-{uuid.uuid4().hex[:8]}"
            rows.append(("runc run", command(["runc", "run", "-b", bundle, name], args.runs)))
            if shutil.which("crun") and os.path.exists(CRUN_MNTNS):
                crun = ["nsenter", f"--mount={CRUN_MNTNS}", "crun", "run", "-b", bundle, name]
                rows.append(("crun run (in the v1-only mount namespace of peers.sh)", command(crun, args.runs)))
        rows += daemon_peers(args.runs)
    print("| how | median | p95 |")
    print("|---|---:|---:|")
    for label, values in rows:
        print(f"| {label} | {statistics.median(values):.1f} ms | {percentile(values, 0.95):.1f} ms |")
    print(f"\n{args.runs} runs each after a warm-up; python {sys.version.split()[0]}, {os.cpu_count()} cpus")


if __name__ == "__main__":
    main()
