#!/usr/bin/env python3
"""Our Docker Engine API against a real dockerd, with the same clients; prints markdown tables.

    sudo .venv/bin/python tests/bench/docker_api.py [run] [list]   (default: both)
        [--runs 20] [--warmup 3] [--containers 300] [--clients 10] [--seconds 20]

One agent (``reconcile agent --socket S --root R --cgroup-parent C``; its Docker API on
``docker.sock`` beside S, all under a temporary directory) stays warm for the run.

1. ``run``: ``docker run --rm --network none busybox:local true`` with the same docker
   CLI (``/usr/local/bin/docker``, 28.x) against our Docker socket and against the
   dockerd of ``../shared/bench/peers.sh setup`` (``/tmp/peer-docker.sock``), commands
   alternating round by round, a fresh CLI process each time; medians after a warm-up
   and the ratio to dockerd's. The target: ours at most one third of dockerd's median.
2. ``list``: N detached ``sleep`` containers made through the agent, then C client
   processes, each a docker SDK for Python ``DockerClient`` on our Docker socket calling
   ``containers.list(sparse=True)`` in a loop for the given seconds (one
   ``GET /containers/json``, as ``docker ps`` sends it): requests per second,
   p50/p90/p99/max. The target: p99 under 50 ms. For reference, one client calling
   the SDK's default ``containers.list()`` (``sparse=False``: the list, then one
   inspect per container, N+1 requests) and ``docker ps`` fresh CLI processes.
   The containers are removed through the agent at the end.

Not part of the test suite. Needs root, the docker CLI and the docker SDK (the test
extra). Everything it makes is removed at the end, on failure and on SIGTERM too;
peers.sh's dockerd is only used, never started or stopped here.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent import futures
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from tests.bench.agent import (  # noqa: E402  (after the path)
    IMAGE,
    PYTHON,
    REPO,
    Agent,
    busybox_tarball,
    log,
    percentile,
    terminated_as_exit,
    timed,
    unmount_all,
)

DOCKER_CLI = "/usr/local/bin/docker"
PEER_SOCKET = "/tmp/peer-docker.sock"
PREFIX = "reconcile-bench-docker"

#: One docker SDK client process: latencies of containers.list() for the given seconds.
CLIENT = r"""
import json, sys, time
import docker
url, seconds, sparse, start_at = sys.argv[1], float(sys.argv[2]), sys.argv[3] == "sparse", float(sys.argv[4])
client = docker.DockerClient(base_url=url, timeout=60)
rows = len(client.containers.list(sparse=sparse))  # connected, warm
while time.time() < start_at:
    time.sleep(0.001)
latencies, end = [], time.monotonic() + seconds
while time.monotonic() < end:
    begin = time.perf_counter()
    rows = len(client.containers.list(sparse=sparse))
    latencies.append((time.perf_counter() - begin) * 1000)
print(json.dumps({"latencies": latencies, "rows": rows}))
"""


def docker(socket: str, config: Path) -> list[str]:
    return [DOCKER_CLI, "--config", str(config), "-H", f"unix://{socket}"]


# --- 1. docker run --rm ------------------------------------------------------------


def run_section(agent: Agent, env: dict[str, str], config: Path, args: argparse.Namespace) -> bool:
    print("### 1. `docker run --rm --network none busybox:local true`, a fresh docker CLI process each run\n")
    ours = agent.socket.parent / "docker.sock"
    commands = {"ours": [*docker(str(ours), config), "run", "--rm", "--network", "none", IMAGE, "true"]}
    if os.path.exists(PEER_SOCKET):
        commands["dockerd"] = [*docker(PEER_SOCKET, config), "run", "--rm", "--network", "none", IMAGE, "true"]
    for name, argv in commands.items():
        print(f"- {name}: `{' '.join(argv)}`")
    names = list(commands)
    for _ in range(args.warmup):
        for name in names:
            timed(commands[name], env)
    results: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(args.runs):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            results[name].append(timed(commands[name], env)[0])
    load = os.getloadavg()[0]
    print(f"\n{args.runs} runs each after {args.warmup} warm-up rounds, alternating; load average {load:.2f}.\n")
    print("| Docker API | median | p95 | min | x dockerd median |")
    print("|---|---:|---:|---:|---:|")
    peer = statistics.median(results["dockerd"]) if "dockerd" in results else None
    for name in names:
        values = results[name]
        median = statistics.median(values)
        ratio = f"{median / peer:.2f}x" if peer else "-"
        print(f"| {name} | {median:.1f} ms | {percentile(values, 0.95):.1f} ms | {min(values):.1f} ms | {ratio} |")
    if peer is None:
        print("\nNo dockerd (run ../shared/bench/peers.sh setup): the one-third target cannot be checked.\n")
        return False
    mine = statistics.median(results["ours"])
    met = mine <= peer / 3
    print(
        f"\nTarget: ours ≤ 1/3 of dockerd's median = {peer / 3:.1f} ms; measured {mine:.1f} ms"
        f" ({mine / peer:.2f}x): **{'met' if met else 'missed'}**.\n"
    )
    return met


# --- 2. containers.list() ------------------------------------------------------------


def make_containers(agent: Agent, count: int) -> list[str]:
    engine = agent.engine()
    names = [f"list{n}" for n in range(count)]

    def make(name: str) -> None:
        request = {"image": IMAGE, "command": ["sleep", "3600"], "name": name, "networks": ["none"]}
        engine.containers.run(request, None, detach=True)

    started = time.monotonic()
    with futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(make, names))
    took = time.monotonic() - started
    print(f"{count} x `run -d --network none {IMAGE} sleep 3600` through the agent (4 at a time): {took:.1f} s.\n")
    return names


def remove_containers(agent: Agent, names: list[str]) -> None:
    engine = agent.engine()

    def remove(name: str) -> None:
        with contextlib.suppress(Exception):
            engine.containers.remove(name, force=True)

    with futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(remove, names))


def sdk_clients(url: str, clients: int, seconds: float, sparse: bool, env: dict[str, str]) -> tuple[list[float], int]:
    start_at = time.time() + 2.0  # every client connected and warm first
    argv = [PYTHON, "-c", CLIENT, url, str(seconds), "sparse" if sparse else "full", str(start_at)]
    processes = [
        subprocess.Popen(argv, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(clients)
    ]
    latencies: list[float] = []
    rows = 0
    for process in processes:
        out, err = process.communicate(timeout=seconds + 120)
        if process.returncode != 0:
            raise SystemExit(f"a docker SDK client failed: {err.decode(errors='replace')}")
        result = json.loads(out)
        latencies += result["latencies"]
        rows = result["rows"]
    return latencies, rows


def list_section(agent: Agent, env: dict[str, str], config: Path, args: argparse.Namespace) -> bool:
    print(f"### 2. docker SDK `containers.list()` with {args.containers} running containers\n")
    names = make_containers(agent, args.containers)
    try:
        url = f"unix://{agent.socket.parent / 'docker.sock'}"
        print("| client | clients | seconds | requests | req/s | p50 | p90 | p99 | max | rows |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        measured: dict[str, list[float]] = {}
        runs = [
            ("`containers.list(sparse=True)` (one GET /containers/json)", args.clients, True),
            ("`containers.list(sparse=True)`", 1, True),
            ("`containers.list()` (list + one inspect per container)", 1, False),
        ]
        for label, clients, sparse in runs:
            log(f"list: {label}, {clients} client(s)")
            seconds = args.seconds if sparse else max(5.0, args.seconds / 4)
            latencies, rows = sdk_clients(url, clients, seconds, sparse, env)
            measured[f"{label}/{clients}"] = latencies
            print(
                f"| {label} | {clients} | {seconds:g} | {len(latencies)} | {len(latencies) / seconds:.1f} |"
                f" {percentile(latencies, 0.5):.1f} ms | {percentile(latencies, 0.9):.1f} ms |"
                f" {percentile(latencies, 0.99):.1f} ms | {max(latencies):.1f} ms | {rows} |"
            )
        ps = [*docker(str(agent.socket.parent / "docker.sock"), config), "ps", "-q"]
        walls = [timed(ps, env)[0] for _ in range(10)]
        print(
            f"| `docker ps -q` (fresh docker CLI) | 1 | - | 10 | - | {statistics.median(walls):.1f} ms | - | - |"
            f" {max(walls):.1f} ms | {args.containers} |"
        )
        p99 = percentile(measured[f"{runs[0][0]}/{args.clients}"], 0.99)
        met = p99 < 50
        print(
            f"\nTarget: p99 of `containers.list(sparse=True)` with {args.clients} clients < 50 ms; measured"
            f" {p99:.1f} ms: **{'met' if met else 'missed'}**. The SDK's default `containers.list()` asks each"
            " container's inspect after the list (N+1 requests, by the SDK's design), shown for reference.\n"
        )
        return met
    finally:
        remove_containers(agent, names)


# --- main ----------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("sections", nargs="*", metavar="run|list", help="default: both")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--containers", type=int, default=300)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    sections = args.sections or ["run", "list"]
    if set(sections) - {"run", "list"}:
        parser.error("sections: run, list")
    if os.geteuid() != 0:
        raise SystemExit("needs root")
    if not os.path.exists(DOCKER_CLI):
        raise SystemExit(f"no docker CLI at {DOCKER_CLI}")
    base = Path(tempfile.mkdtemp(prefix=f"{PREFIX}-"))
    config = base / "docker-config"
    config.mkdir()
    env = {**os.environ, "RECONCILE_CONFIG": str(base / "config"), "NO_COLOR": "1", "DOCKER_CONFIG": str(config)}
    for key in ("RECONCILE_HOST", "RECONCILE_CONTEXT", "RECONCILE_SOCKET", "DOCKER_HOST", "PYTHONDONTWRITEBYTECODE"):
        env.pop(key, None)
    import compileall

    compileall.compile_dir(str(REPO / "reconciler"), quiet=2)
    agent = Agent(base, env)
    outcome: dict[str, bool] = {}
    try:
        with terminated_as_exit():
            print(f"## Our Docker API against dockerd ({time.strftime('%Y-%m-%d %H:%M')})\n")
            agent.start()
            agent.engine().images.import_tarball(busybox_tarball(base), IMAGE)
            if "run" in sections:
                log("run: measuring")
                outcome["run"] = run_section(agent, env, config, args)
            if "list" in sections:
                outcome["list"] = list_section(agent, env, config, args)
    finally:
        agent.stop()
        problems = agent.root.cleanup()
        problems += [f"mount left: {point}" for point in unmount_all(base)]
        shutil.rmtree(base, ignore_errors=True)
        log("cleanup: " + ("; ".join(problems) if problems else f"everything removed ({base})"))
    print("targets: " + ", ".join(f"{name} {'met' if met else 'missed'}" for name, met in outcome.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
