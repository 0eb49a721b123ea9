#!/usr/bin/env python3
"""The agent's fast paths, through ``--host unix://…``, against the in-process CLI and
the peers of ``../shared/bench/peers.sh setup``; prints markdown tables.

    sudo .venv/bin/python tests/bench/agent.py [run] [ps] [pull]   (default: all three)
        [--runs 25] [--warmup 3] [--profile | --no-profile]
        [--containers 300] [--clients 10] [--seconds 20]
        [--mib 100] [--layers 5] [--pull-runs 5]

One agent (``reconcile agent --socket S --root R --cgroup-parent C``, all under a
temporary directory) is started for the whole run and stays warm.

1. ``run``: ``reconcile --host unix://S run --rm IMG true``, a fresh CLI process each
   time, against the in-process CLI (``reconcile run --root R2 --rm IMG true``: a root
   no agent serves), ``podman run --rm --network none`` and ``docker run --rm
   --network none`` (where peers.sh set them up), all on the busybox rootfs of
   peers.sh (its tarball, imported into both our roots). Commands alternate, round
   by round; medians after a warm-up, with the ratio to podman's median and the
   median of the round-by-round ratios. The target is the agent path at most 0.35x
   podman's median. When it is missed (or with ``--profile``): where the time of a
   fresh CLI process goes (timestamps taken inside the process: interpreter start,
   imports, argument parsing, the upgrade handshake, the container's run in the
   agent, exit), the agent's own time for the route (its ``/metrics`` histogram),
   the same request from a warm client, the engine's ``run`` warm in-process (timed,
   and under cProfile), and the largest imports (``-X importtime``).
2. ``ps``: N detached ``sleep`` containers (``--network none``) made through the
   agent; then ``GET /v1/containers`` from C concurrent clients (separate processes,
   a new connection per request as the CLI's transport makes, then keep-alive) and
   ``reconcile --host unix://S ps`` from C concurrent loops, each for the given
   seconds: requests per second, p50/p90/p99/max, and the agent's own time per
   request (its ``/metrics`` histogram). The target is a p99 under 50 ms for the
   HTTP GET. Then the engine's ``containers.list()`` over the agent's root, timed and
   under cProfile in this process (what one GET costs without HTTP). The containers
   are removed through the agent at the end.
3. ``pull``: Debian's ``docker-registry`` on a free loopback port (config and data in
   the temporary directory), an image of L gzip layers of incompressible data, M MiB
   in all, pushed there in-process; then, alternating, ``reconcile --host unix://S
   pull`` (the agent's store emptied of it before each run, untimed), the in-process
   ``reconcile pull --root R3`` (a fresh root each run) and ``skopeo copy
   docker://… oci:DIR`` (a fresh directory each run). The agent answers once the
   blobs are verified and stored and unpacks the layers right after, in the
   background (its store emptied again after each run, which waits for that unpack,
   so it never overlaps the next command); the in-process CLI unpacks before it
   returns; skopeo only copies blobs (``skopeo + umoci unpack`` is shown where umoci is
   installed, as the like-for-like peer of the in-process CLI). Two analysis rows split our cost: the
   library's ``pull`` in this warm process with ``unpack=False`` (what skopeo does)
   and with unpacking. The target: the agent no slower than skopeo.

``reconciler/`` is byte-compiled first and the processes measured run without
``PYTHONDONTWRITEBYTECODE``: with it set, every module edited since its ``.pyc`` was
written is compiled again in every fresh process, which an installed CLI never pays.

Not part of the test suite (pytest collects ``test_*.py`` only). Needs root.
Everything it makes (the agent, containers, cgroups, the registry, temporary
directories) is removed at the end, on failure and on SIGTERM too; the peers of
peers.sh are only used, never started or stopped here.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any, NamedTuple

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO))

VENV_PYTHON = REPO / ".venv" / "bin" / "python"
PYTHON = str(VENV_PYTHON) if VENV_PYTHON.exists() else sys.executable
#: The CLI as users run it: pip's ``reconcile`` entry point (``python -m reconciler``
#: would add runpy and importlib.util, about 9 ms per process, that no user pays).
ENTRY_POINT = REPO / ".venv" / "bin" / "reconcile"
RECONCILE = [str(ENTRY_POINT)] if ENTRY_POINT.exists() else [PYTHON, "-m", "reconciler"]
IMAGE = "busybox:local"
PREFIX = "reconcile-bench-agent"

#: What ../shared/bench/peers.sh setup leaves running or made (see PEERS.md there).
PEER_TAR = "/tmp/peer-busybox-rootfs.tar"
DOCKER = ["/usr/bin/docker", "-H", "unix:///tmp/peer-docker.sock"]
DOCKER_SOCKET = "/tmp/peer-docker.sock"
PODMAN_DIR = "/tmp/peer-podman"

#: Measured on this host class before this week (issue 11), for reference.
BEFORE = "in-process CLI 151 ms, podman 192 ms, docker 291 ms"
RUN_TARGET = 0.35  # the agent path's median over podman's
PS_TARGET_MS = 50.0  # p99 of GET /v1/containers with 10 clients


def log(message: str) -> None:
    print(f"== {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def shell(argv: list[str]) -> str:
    """A command line as it could be pasted (temporary paths shortened to $T)."""
    return " ".join(argv)


def print_profile(title: str, profiler: Any, runs: int, top: int = 18) -> None:
    """The calls that take the most under cProfile, per run (cProfile slows Python
    code down; syscalls and waits much less)."""
    import pstats

    stats: dict[tuple[str, int, str], tuple[int, int, float, float, Any]]
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    rows = sorted(stats.items(), key=lambda item: -item[1][3])
    print(f"{title}:\n")
    print("| function | calls per run | cumulative per run | own per run |")
    print("|---|---:|---:|---:|")
    for (filename, line, function), (_cc, calls, own, cumulative, _callers) in rows[:top]:
        where = filename
        for prefix in (str(REPO) + "/", os.path.dirname(os.__file__) + "/"):
            where = where.removeprefix(prefix)
        label = f"{where}:{line}({function})" if line else function
        print(f"| `{label}` | {calls / runs:g} | {cumulative * 1000 / runs:.1f} ms | {own * 1000 / runs:.1f} ms |")
    print()


# --- the agent and our roots ---------------------------------------------------------


class Root:
    """A root our engine works on (the agent's or an in-process CLI's), its cgroup
    parent, and the cleanup of anything left in them."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.cgroup_parent = f"{PREFIX}-{uuid.uuid4().hex[:8]}"

    def cleanup(self) -> list[str]:
        """Kill what still runs, destroy cgroups and namespaces; what could not be
        removed, as messages."""
        from reconciler.runtime import cgroups, netns
        from reconciler.runtime.state import StateStore

        problems: list[str] = []
        if not self.directory.exists():
            return problems
        store = StateStore(str(self.directory))
        names = list(store.names())
        for name in names:
            state = store.read(name)
            for pid in (state.pid, state.monitor_pid) if state else ():
                if pid:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
        for name in names:
            group = cgroups.new_cgroup(name, parent=self.cgroup_parent)
            for _ in range(100):
                try:
                    group.destroy()
                    break
                except cgroups.CgroupError:
                    time.sleep(0.05)
            else:
                problems.append(f"cgroup of {name} under {self.cgroup_parent} not removed")
            with contextlib.suppress(OSError):
                netns.remove(store.path(name, "netns"))
        for directory in cgroups.new_cgroup("x", parent=self.cgroup_parent).parent_dirs():
            if os.path.isdir(directory):
                try:
                    os.rmdir(directory)
                except OSError as exc:
                    problems.append(f"cgroup {directory}: {exc}")
        return problems


class Agent:
    """``reconcile agent --socket S --root R --cgroup-parent C`` in a subprocess."""

    def __init__(self, base: Path, env: dict[str, str]) -> None:
        self.root = Root(base / "agent-root")
        run = base / "run"
        run.mkdir(mode=0o755)
        self.socket = run / "reconcile.sock"
        self.log_path = base / "agent.log"
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    def argv(self) -> list[str]:
        return [
            PYTHON, "-m", "reconciler", "agent", "--socket", str(self.socket),
            "--root", str(self.root.directory), "--cgroup-parent", self.root.cgroup_parent,
        ]  # fmt: skip

    def start(self, timeout: float = 30.0) -> None:
        with open(self.log_path, "ab") as out:
            self.process = subprocess.Popen(self.argv(), env=self.env, cwd=REPO, stdout=out, stderr=out)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"the agent exited with {self.process.returncode}:\n{self.log_path.read_text()}")
            probe = socket.socket(socket.AF_UNIX)
            try:
                probe.connect(str(self.socket))
                return
            except OSError:
                time.sleep(0.05)
            finally:
                probe.close()
        raise SystemExit(f"the agent did not answer within {timeout}s:\n{self.log_path.read_text()}")

    def engine(self) -> Any:
        from reconciler.client.remote import RemoteEngine

        return RemoteEngine(self.host)

    def cli(self, *args: str) -> list[str]:
        return [*RECONCILE, "--host", self.host, *args]

    def get(self, path: str) -> tuple[int, bytes]:
        from reconciler.client.transport import UnixConnection

        connection = UnixConnection(str(self.socket), timeout=60)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def route_seconds(self, route: str, method: str) -> tuple[float, int]:
        """(sum of seconds, count) of the agent's request histogram for ``route``."""
        _status, raw = self.get("/metrics")
        total, count = 0.0, 0
        pattern = re.compile(r"^reconcile_api_request_duration_seconds_(sum|count)\{(.*)\} (\S+)$")
        for line in raw.decode().splitlines():
            found = pattern.match(line)
            if not found:
                continue
            labels = dict(re.findall(r'(\w+)="([^"]*)"', found.group(2)))
            if labels.get("route") != route or labels.get("method") != method:
                continue
            if found.group(1) == "sum":
                total += float(found.group(3))
            else:
                count += int(float(found.group(3)))
        return total, count

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)


def busybox_tarball(base: Path) -> str:
    """peers.sh's rootfs tarball (the image docker and podman run), else one made here."""
    if os.path.exists(PEER_TAR):
        return PEER_TAR
    import tarfile

    rootfs = base / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    shutil.copy("/bin/busybox", rootfs / "bin" / "busybox")
    for applet in ("sh", "true", "sleep"):
        os.symlink("busybox", rootfs / "bin" / applet)
    tarball = base / "busybox.tar"
    with tarfile.open(tarball, "w") as archive:
        archive.add(rootfs, arcname=".")
    return str(tarball)


def peers(runs_env: dict[str, str]) -> dict[str, list[str]]:
    """The peer commands peers.sh set up, by label (none when it was not run)."""
    found: dict[str, list[str]] = {}
    if shutil.which("podman") and os.path.exists(os.path.join(PODMAN_DIR, "containers.conf")):
        runs_env["CONTAINERS_CONF"] = os.path.join(PODMAN_DIR, "containers.conf")
        runs_env["CONTAINERS_STORAGE_CONF"] = os.path.join(PODMAN_DIR, "storage.conf")
        found["podman"] = ["podman", "run", "--rm", "--network", "none", IMAGE, "true"]
    if os.path.exists(DOCKER_SOCKET) and os.path.exists(DOCKER[0]):
        found["docker"] = [*DOCKER, "run", "--rm", "--network", "none", IMAGE, "true"]
    return found


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall ms, CPU ms of the process and the children it waited for)."""
    start = time.perf_counter()
    process = subprocess.Popen(argv, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert process.stderr is not None
    error = process.stderr.read()
    _pid, status, usage = os.wait4(process.pid, 0)
    wall = (time.perf_counter() - start) * 1000
    process.returncode = os.waitstatus_to_exitcode(status)
    process.stderr.close()
    if process.returncode != 0:
        raise SystemExit(f"{shell(argv)} exited {process.returncode}: {error.decode(errors='replace')}")
    return wall, (usage.ru_utime + usage.ru_stime) * 1000


# --- 1. run --rm IMG true -----------------------------------------------------------


class RunBench:
    def __init__(self, base: Path, agent: Agent, env: dict[str, str], args: argparse.Namespace) -> None:
        self.base, self.agent, self.env, self.args = base, agent, env, args
        self.local = Root(base / "local-root")
        self.commands: dict[str, list[str]] = {}
        self.engine_profile: tuple[Any, int] = (None, 0)

    def prepare(self) -> None:
        tarball = busybox_tarball(self.base)
        self.agent.engine().images.import_tarball(tarball, IMAGE)
        argv = [PYTHON, "-m", "reconciler", "image", "import", "--root", str(self.local.directory), tarball, IMAGE]
        subprocess.run(argv, env=self.env, cwd=REPO, check=True, stdout=subprocess.DEVNULL)
        local = ["run", "--root", str(self.local.directory), "--cgroup-parent", self.local.cgroup_parent]
        reconcile = RECONCILE
        self.commands = {
            "agent": self.agent.cli("run", "--rm", IMAGE, "true"),
            "agent, --host after `run`": [*reconcile, "run", "--host", self.agent.host, "--rm", IMAGE, "true"],
            "in-process CLI": [*RECONCILE, *local, "--rm", IMAGE, "true"],
            **peers(self.env),
        }

    def measure(self) -> dict[str, list[tuple[float, float]]]:
        names = list(self.commands)
        for _ in range(self.args.warmup):
            for name in names:
                timed(self.commands[name], self.env)
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
        for round_ in range(self.args.runs):
            shift = round_ % len(names)  # each command goes first as often as the others
            for name in names[shift:] + names[:shift]:
                results[name].append(timed(self.commands[name], self.env))
        return results

    def report(self, results: dict[str, list[tuple[float, float]]]) -> bool:
        labels = {
            "agent": "`reconcile --host unix://S run --rm IMG true` (agent)",
            "agent, --host after `run`": "`reconcile run --host unix://S --rm IMG true` (agent)",
            "in-process CLI": "`reconcile run --root R2 --rm IMG true` (in-process)",
            "podman": "`podman run --rm --network none IMG true`",
            "docker": "`docker run --rm --network none IMG true`",
        }
        print("### 1. `run --rm IMG true`, a fresh CLI process each run\n")
        for name, argv in self.commands.items():
            print(f"- {name}: `{shell(argv)}`")
        print()
        podman = [wall for wall, _cpu in results.get("podman", [])]
        print("| command | median | p95 | min | client CPU | x podman median | x podman, paired |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for name, values in results.items():
            walls = [wall for wall, _cpu in values]
            cpu = statistics.median(c for _wall, c in values)
            ratio = paired = "-"
            if podman:
                ratio = f"{statistics.median(walls) / statistics.median(podman):.2f}x"
                paired = f"{statistics.median(w / p for w, p in zip(walls, podman, strict=True)):.2f}x"
            print(
                f"| {labels.get(name, name)} | {statistics.median(walls):.1f} ms | {percentile(walls, 0.95):.1f} ms"
                f" | {min(walls):.1f} ms | {cpu:.1f} ms | {ratio} | {paired} |"
            )
        print(
            f"\n{self.args.runs} runs each after {self.args.warmup} warm-up rounds, alternating (the first command"
            f" rotates each round); python {sys.version.split()[0]}, {os.cpu_count()} cpus, load average"
            f" {os.getloadavg()[0]:.2f}. Client CPU: the CLI process and the children it waited for (not the"
            f" agent's, dockerd's or conmon's). Before this week: {BEFORE}."
        )
        agent = statistics.median(w for w, _c in results["agent"])
        if not podman:
            print("\nNo podman (run ../shared/bench/peers.sh setup): the 0.35x target cannot be checked.")
            return False
        limit = RUN_TARGET * statistics.median(podman)
        met = agent <= limit
        print(
            f"\nTarget: through the agent ≤ {RUN_TARGET}x podman's median = {limit:.1f} ms; measured {agent:.1f} ms"
            f" ({agent / statistics.median(podman):.2f}x): **{'met' if met else 'missed'}**.\n"
        )
        return met

    # --- where the time goes -------------------------------------------------------

    TIMELINE = r"""
import time
first = time.monotonic()
import json, os, sys
before = set(sys.modules)
import reconciler.cli.main as cli_main
import reconciler.cli.container_commands, reconciler.cli.connect
import reconciler.client.remote, reconciler.client.containers, reconciler.client.contexts
import reconciler.client.transport, reconciler.wire.routes
import reconciler.client.attach as attach
imported = time.monotonic()
marks = {}
def wrap(function, name, at_start):
    def wrapped(*args, **kwargs):
        if at_start:
            marks[name] = time.monotonic()
        try:
            return function(*args, **kwargs)
        finally:
            if not at_start:
                marks[name] = time.monotonic()
    return wrapped
attach._connect = wrap(attach._connect, "connect", True)
attach._handshake = wrap(attach._handshake, "upgraded", False)
attach._pump = wrap(attach._pump, "exited", False)
loaded = set(sys.modules)
code = cli_main.main(sys.argv[1:])
returned = time.monotonic()
with open(os.environ["BENCH_TIMELINE"], "w") as out:
    json.dump({"first": first, "imported": imported, **marks, "returned": returned, "code": code,
               "modules": len(loaded - before), "late": sorted(set(sys.modules) - loaded)}, out)
raise SystemExit(code)
"""

    def profile(self) -> None:
        print("#### Where the time of `reconcile --host unix://S run --rm IMG true` goes\n")
        runs = max(10, self.args.runs // 2)
        floors = {
            "python -c pass (venv, site)": [PYTHON, "-c", "pass"],
            "python -S -c pass (no site)": [PYTHON, "-S", "-c", "pass"],
        }
        floor: dict[str, list[float]] = {name: [] for name in floors}
        phases: dict[str, list[float]] = {}
        timeline_path = str(self.base / "timeline.json")
        env = {**self.env, "BENCH_TIMELINE": timeline_path}
        argv = [PYTHON, "-c", self.TIMELINE, "--host", self.agent.host, "run", "--rm", IMAGE, "true"]
        late: set[str] = set()
        modules = 0
        timed(argv, env)  # warm-up
        agent_before = self.agent.route_seconds("/v1/containers/run", "POST")
        for _ in range(runs):
            for name, command in floors.items():
                floor[name].append(timed(command, self.env)[0])
            start = time.monotonic()
            timed(argv, env)
            end = time.monotonic()
            with open(timeline_path) as handle:
                marks = json.load(handle)
            late.update(marks["late"])
            modules = marks["modules"]
            steps = {
                "interpreter start and site, to the first line": marks["first"] - start,
                "imports of the run path (all of them, up front)": marks["imported"] - marks["first"],
                "main(): argparse, connect, the request (to the socket's connect)": marks["connect"]
                - marks["imported"],
                "connect, send, agent validates and answers 101": marks["upgraded"] - marks["connect"],
                "101 → EXIT frame: the container's run in the agent": marks["exited"] - marks["upgraded"],
                "after the exit code: return, interpreter exit, reaped": end - marks["exited"],
            }
            for step, seconds in steps.items():
                phases.setdefault(step, []).append(seconds * 1000)
            phases.setdefault("total (this driver)", []).append((end - start) * 1000)
        agent_after = self.agent.route_seconds("/v1/containers/run", "POST")
        in_agent = (agent_after[0] - agent_before[0]) / max(1, agent_after[1] - agent_before[1]) * 1000

        print("| phase (timestamps inside a fresh CLI process) | median |")
        print("|---|---:|")
        for step, values in phases.items():
            print(f"| {step} | {statistics.median(values):.1f} ms |")
        for name, values in floor.items():
            print(f"| for reference: {name} | {statistics.median(values):.1f} ms |")
        print(f"| the agent's handler time for `POST /v1/containers/run` (its /metrics, mean) | {in_agent:.1f} ms |")
        warm_remote, warm_engine = self.warm(runs)
        print(f"| the same request from a warm client process (RemoteEngine.containers.run) | {warm_remote:.1f} ms |")
        print(f"| the engine's containers.run warm in this process (no HTTP; in-process root) | {warm_engine:.1f} ms |")
        print(
            f"\n{runs} runs, medians; modules imported by the run path: {modules}; imported after the up-front"
            f" ones: {', '.join(sorted(late)) or 'none'}.\n"
        )
        self.importtime()
        self.print_engine_profile()

    def warm(self, runs: int) -> tuple[float, float]:
        from reconciler.engine.core import Engine
        from reconciler.engine.models.containers import Stdio
        from reconciler.engine.wiring import EngineConfig

        request: Any = {"image": IMAGE, "command": ["true"], "remove": True}
        null_in = os.open(os.devnull, os.O_RDONLY)
        null_out = os.open(os.devnull, os.O_WRONLY)
        stdio = Stdio(null_in, null_out, null_out)
        try:
            remote = self.agent.engine().containers
            engine = Engine(EngineConfig(str(self.local.directory), self.local.cgroup_parent))
            try:
                times: dict[str, list[float]] = {"remote": [], "engine": []}
                for index in range(runs + 2):
                    groups: tuple[tuple[str, Any], ...] = (("remote", remote), ("engine", engine.containers))
                    for name, group in groups:
                        start = time.perf_counter()
                        result = group.run(dict(request), stdio)
                        elapsed = (time.perf_counter() - start) * 1000
                        if result["exit_code"] != 0:
                            raise SystemExit(f"warm {name} run exited {result['exit_code']}")
                        if index >= 2:
                            times[name].append(elapsed)
                import cProfile

                profiler = cProfile.Profile()
                profiler.enable()
                for _ in range(runs):
                    engine.containers.run(request.copy(), stdio)
                profiler.disable()
                self.engine_profile = (profiler, runs)
            finally:
                engine.close()
        finally:
            os.close(null_in)
            os.close(null_out)
        return statistics.median(times["remote"]), statistics.median(times["engine"])

    def print_engine_profile(self) -> None:
        profiler, runs = self.engine_profile
        title = f"The engine's `containers.run` of `{IMAGE} true` with `remove`, warm, under cProfile ({runs} runs)"
        print_profile(title, profiler, runs)

    def importtime(self) -> None:
        argv = [PYTHON, "-X", "importtime", "-m", "reconciler", "--host", self.agent.host, "run", "--rm", IMAGE, "true"]
        rows: list[tuple[int, int, str]] = []
        for _ in range(3):  # the last of three: caches warm
            out = subprocess.run(argv, env=self.env, cwd=REPO, capture_output=True, text=True, check=True)
            rows = []
            for line in out.stderr.splitlines():
                found = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
                if found:
                    rows.append((int(found.group(1)), int(found.group(2)), found.group(3) + found.group(4)))
        total = sum(own for own, _cumulative, _name in rows) / 1000
        top = [row for row in rows if not row[2].startswith("  ")]  # top-level imports (and site's)
        top.sort(key=lambda row: -row[1])
        print(f"`{shell(argv)}`: {len(rows)} modules, {total:.1f} ms of import time under -X importtime (inflated)\n")
        print("| top-level import | cumulative | self |")
        print("|---|---:|---:|")
        for own, cumulative, name in top[:14]:
            print(f"| {name.strip()} | {cumulative / 1000:.1f} ms | {own / 1000:.1f} ms |")
        print()


# --- 2. ps under load ---------------------------------------------------------------

CLIENT = r"""
import http.client, json, socket, sys, time
path, url, start_at, seconds, keepalive, expect = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), \
    sys.argv[5] == "1", int(sys.argv[6])

class Unix(http.client.HTTPConnection):
    def __init__(self):
        super().__init__("localhost", timeout=60)
    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(60)
        sock.connect(path)
        self.sock = sock

latencies, errors, size, connection = [], 0, 0, None
time.sleep(max(0.0, start_at - time.monotonic()))
end = start_at + seconds
while True:
    started = time.monotonic()
    if started >= end:
        break
    try:
        if connection is None:
            connection = Unix()
        connection.request("GET", url)
        response = connection.getresponse()
        body = response.read()
        elapsed = time.monotonic() - started
        if not keepalive:
            connection.close()
            connection = None
        ok = response.status == 200 and len(json.loads(body)) >= expect
        size = len(body)
    except Exception:
        ok, connection = False, None
    if ok:
        latencies.append(elapsed)
    else:
        errors += 1
json.dump({"latencies": latencies, "errors": errors, "bytes": size}, sys.stdout)
"""


class PsBench:
    def __init__(self, agent: Agent, env: dict[str, str], args: argparse.Namespace) -> None:
        self.agent, self.env, self.args = agent, env, args
        self.names: list[str] = []
        self.tag = uuid.uuid4().hex[:6]

    def create(self) -> float:
        containers = self.agent.engine().containers
        names = [f"benchps-{self.tag}-{index:03d}" for index in range(self.args.containers)]

        def one(name: str) -> None:
            request: Any = {"image": IMAGE, "command": ["sleep", "3600"], "name": name, "networks": ["none"]}
            containers.run(request, detach=True)
            self.names.append(name)

        start = time.perf_counter()
        with futures.ThreadPoolExecutor(4) as pool:
            for job in [pool.submit(one, name) for name in names]:
                job.result()
        elapsed = time.perf_counter() - start
        running = [row for row in containers.list() if row["name"] in set(names)]
        if len(running) != len(names):
            raise SystemExit(f"{len(running)} of {len(names)} containers running")
        return elapsed

    def remove(self) -> float:
        if not self.names:
            return 0.0
        containers = self.agent.engine().containers
        start = time.perf_counter()
        failed: list[str] = []

        def one(name: str) -> None:
            try:
                containers.remove(name, force=True)
            except Exception as exc:
                failed.append(f"{name}: {exc}")

        with futures.ThreadPoolExecutor(4) as pool:
            list(pool.map(one, list(self.names)))
        self.names = []
        if failed:
            log(f"{len(failed)} containers not removed through the agent: {failed[:3]}")
        return time.perf_counter() - start

    def http(self, clients: int, seconds: float, *, keepalive: bool) -> dict[str, Any]:
        start_at = time.monotonic() + 1.5  # every client started and waiting
        argv = [
            PYTHON, "-S", "-c", CLIENT, str(self.agent.socket), "/v1/containers",
            str(start_at), str(seconds), "1" if keepalive else "0", str(self.args.containers),
        ]  # fmt: skip
        processes = [subprocess.Popen(argv, stdout=subprocess.PIPE) for _ in range(clients)]
        latencies: list[float] = []
        errors = size = 0
        for process in processes:
            out, _ = process.communicate(timeout=seconds + 120)
            result = json.loads(out)
            latencies += [value * 1000 for value in result["latencies"]]
            errors += result["errors"]
            size = max(size, result["bytes"])
        return {"latencies": latencies, "errors": errors, "seconds": seconds, "bytes": size}

    def cli(self, clients: int, seconds: float) -> dict[str, Any]:
        argv = self.agent.cli("ps")
        latencies: list[float] = []
        errors: list[int] = []
        lock = threading.Lock()
        start_at = time.monotonic() + 0.2
        end = start_at + seconds

        def loop() -> None:
            time.sleep(max(0.0, start_at - time.monotonic()))
            while (started := time.monotonic()) < end:
                result = subprocess.run(argv, env=self.env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
                elapsed = (time.monotonic() - started) * 1000
                ok = result.returncode == 0 and result.stdout.count(b"\n") > self.args.containers
                with lock:
                    (latencies.append(elapsed) if ok else errors.append(result.returncode))

        threads = [threading.Thread(target=loop) for _ in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return {"latencies": latencies, "errors": len(errors), "seconds": seconds, "bytes": 0}

    def list_profile(self, runs: int = 10) -> None:
        """The engine's ``containers.list`` over the agent's root, in this process
        (reading only): what one ``GET /v1/containers`` costs without HTTP."""
        import cProfile

        from reconciler.engine.core import Engine
        from reconciler.engine.wiring import EngineConfig

        engine = Engine(EngineConfig(str(self.agent.root.directory), self.agent.root.cgroup_parent))
        try:
            engine.containers.list()
            times, encode = [], []
            for _ in range(runs):
                start = time.perf_counter()
                rows = engine.containers.list()
                middle = time.perf_counter()
                json.dumps(rows)
                times.append((middle - start) * 1000)
                encode.append((time.perf_counter() - middle) * 1000)
            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(runs):
                engine.containers.list()
            profiler.disable()
        finally:
            engine.close()
        sizes = [
            os.path.getsize(os.path.join(directory, "state.json"))
            for directory in (self.agent.root.directory / "containers").iterdir()
            if (directory / "state.json").exists()
        ]
        print(
            f"\nIn this process, the engine's `containers.list()` over the agent's root ({len(rows)} rows):"
            f" median {statistics.median(times):.1f} ms, min {min(times):.1f} ms, then json.dumps of the rows"
            f" {statistics.median(encode):.1f} ms; each container's state.json is read and parsed"
            f" ({statistics.median(sizes) / 1024:.1f} KiB median).\n"
        )
        print_profile(f"`containers.list()` under cProfile ({runs} calls)", profiler, runs, top=14)

    def run(self) -> bool:
        print(f"### 2. `ps` with {self.args.containers} running containers, concurrent clients\n")
        created = self.create()
        print(
            f"{self.args.containers} x `run -d --network none {IMAGE} sleep 3600` through the agent (4 at a time):"
            f" {created:.1f} s, {created * 1000 / self.args.containers:.0f} ms per container.\n"
        )
        seconds, clients = self.args.seconds, self.args.clients
        route = ("/v1/containers", "GET")
        rows: list[tuple[str, int, dict[str, Any], float | None]] = []
        get, keep, cli = (
            "GET /v1/containers, a new connection per request",
            "GET /v1/containers, keep-alive",
            "`reconcile --host unix://S ps` (fresh process)",
        )
        plan: list[tuple[str, int, Callable[[], dict[str, Any]]]] = [
            (get, 1, lambda: self.http(1, 5, keepalive=False)),
            (get, clients, lambda: self.http(clients, seconds, keepalive=False)),
            (keep, clients, lambda: self.http(clients, seconds, keepalive=True)),
            (cli, 1, lambda: self.cli(1, 5)),
            (cli, clients, lambda: self.cli(clients, seconds)),
        ]
        for label, n, measure in plan:
            log(f"ps: {label}, {n} client(s)")
            before = self.agent.route_seconds(*route)
            result = measure()
            after = self.agent.route_seconds(*route)
            handled = after[1] - before[1]
            in_agent = (after[0] - before[0]) / handled * 1000 if handled else None
            rows.append((label, n, result, in_agent))
        size = max(row[2]["bytes"] for row in rows)
        print(f"- HTTP clients: `{PYTHON} -S -c CLIENT` processes (http.client over AF_UNIX, the body read whole)")
        print(f"- CLI: `{shell(self.agent.cli('ps'))}` in a loop per client")
        print(f"- response body: {size / 1024:.0f} KiB for {self.args.containers} containers\n")
        print("| client | clients | seconds | requests | req/s | p50 | p90 | p99 | max | errors | agent's time |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for label, n, result, in_agent in rows:
            values = result["latencies"] or [float("nan")]
            agent_text = f"{in_agent:.1f} ms" if in_agent is not None else "-"
            print(
                f"| {label} | {n} | {result['seconds']:g} | {len(result['latencies'])}"
                f" | {len(result['latencies']) / result['seconds']:.1f} | {percentile(values, 0.5):.1f} ms"
                f" | {percentile(values, 0.9):.1f} ms | {percentile(values, 0.99):.1f} ms | {max(values):.1f} ms"
                f" | {result['errors']} | {agent_text} |"
            )
        p99 = percentile(rows[1][2]["latencies"] or [float("inf")], 0.99)
        met = p99 < PS_TARGET_MS
        print(
            f"\nTarget: p99 of GET /v1/containers with {clients} clients (new connection each) < {PS_TARGET_MS:g} ms;"
            f" measured {p99:.1f} ms: **{'met' if met else 'missed'}**. The agent's time is its /metrics histogram"
            f" for GET /v1/containers over the same window (handler entry to response written)."
        )
        self.list_profile()
        removed = self.remove()
        print(
            f"\n{self.args.containers} x `rm -f` through the agent (4 at a time): {removed:.1f} s,"
            f" {removed * 1000 / self.args.containers:.0f} ms per container.\n"
        )
        return met


# --- 3. pull ------------------------------------------------------------------------


def build_image(directory: str, reference: str, *, mib: int, layers: int) -> int:
    """``layers`` layers of random bytes (gzip cannot shrink them), pushed to the
    registry from a store of their own; the layers' size in bytes."""
    from reconciler.images.distribution import RegistryConfig, push
    from reconciler.images.store import ImageStore
    from tests.registry_fixtures import file_tar, make_image

    store = ImageStore(directory)
    per_layer = (mib << 20) // layers
    noise = random.Random(42)
    tars = []
    for index in range(layers):
        files = {f"data/{index}/{n}.bin": noise.randbytes(per_layer // 4) for n in range(4)}
        tars.append(file_tar(files))
    make_image(store, reference, tars, compress=True)
    push(store, reference, config=RegistryConfig(docker_config="/nonexistent/config.json"))
    return sum(layer.size for layer in store.image(reference).layers)


class Job(NamedTuple):
    """One way of pulling: made ready (untimed), run (timed), cleaned up (untimed)."""

    prepare: Callable[[], None]
    run: Callable[[], None]
    after: Callable[[], None]
    shown: str  # the command lines, or what runs in this process


class PullBench:
    def __init__(self, base: Path, agent: Agent, env: dict[str, str], args: argparse.Namespace) -> None:
        self.base, self.agent, self.env, self.args = base, agent, env, args
        self.scratch = base / "pull"
        self.scratch.mkdir()
        self.local_roots: list[Root] = []

    def run(self) -> bool:
        from tests.registry_fixtures import docker_registry

        print(f"### 3. `pull` of a {self.args.mib} MiB image in {self.args.layers} layers from a loopback registry\n")
        with docker_registry(str(self.scratch / "registry")) as registry:
            reference = f"{registry.host}/bench/big:1"
            size = build_image(str(self.scratch / "source"), reference, mib=self.args.mib, layers=self.args.layers)
            shutil.rmtree(self.scratch / "source")
            jobs = self.jobs(reference)
            results: dict[str, list[float]] = {name: [] for name in jobs}
            names = list(jobs)
            before = self.agent.route_seconds("/v1/images/pull", "POST")
            for round_ in range(self.args.pull_runs + 1):  # the first round warms caches and is dropped
                shift = round_ % len(names)
                for name in names[shift:] + names[:shift]:
                    job = jobs[name]
                    job.prepare()
                    start = time.perf_counter()
                    job.run()
                    elapsed = time.perf_counter() - start
                    job.after()
                    if round_:
                        results[name].append(elapsed)
            after = self.agent.route_seconds("/v1/images/pull", "POST")
            in_agent = (after[0] - before[0]) / max(1, after[1] - before[1])
            stored = self.agent_store_bytes(reference)
        self.report(jobs, results, size, stored, in_agent)
        skopeo = results.get("skopeo copy")
        return skopeo is not None and statistics.median(results["agent"]) <= statistics.median(skopeo)

    def jobs(self, reference: str) -> dict[str, Job]:
        from reconciler.images.distribution import RegistryConfig, pull
        from reconciler.images.store import ImageStore

        remote = self.agent.engine().images
        oci = self.scratch / "oci"
        bundle = self.scratch / "bundle"
        local = Root(self.scratch / "local-root")
        self.local_roots.append(local)
        library = self.scratch / "library-store"

        def agent_empty() -> None:
            with contextlib.suppress(Exception):
                remote.remove(reference, force=True)
            remote.prune()

        def local_empty() -> None:
            shutil.rmtree(local.directory, ignore_errors=True)

        def library_empty() -> None:
            shutil.rmtree(library, ignore_errors=True)

        def oci_empty() -> None:
            shutil.rmtree(oci, ignore_errors=True)
            shutil.rmtree(bundle, ignore_errors=True)

        def nothing() -> None:
            pass

        def commands(*argvs: list[str]) -> Callable[[], None]:
            def run() -> None:
                for argv in argvs:
                    timed(argv, self.env)

            return run

        def shown(*argvs: list[str]) -> str:
            return " && ".join(f"`{shell(argv)}`" for argv in argvs)

        def in_process(unpack: bool) -> Callable[[], None]:
            def run() -> None:
                pull(ImageStore(str(library)), reference, config=config, unpack=unpack)

            return run

        config = RegistryConfig(docker_config="/nonexistent/config.json")

        cli = self.agent.cli("pull", "-q", reference)
        local_cli = [*RECONCILE, "pull", "--root", str(local.directory), "-q", reference]
        found = {
            # after: the image removed and pruned, which waits for the agent's background
            # unpack (the prune holds the store exclusively), so it never overlaps the next job
            "agent": Job(agent_empty, commands(cli), agent_empty, shown(cli)),
            "in-process CLI": Job(local_empty, commands(local_cli), local_empty, shown(local_cli)),
            "(analysis) library pull, blobs only, warm": Job(
                library_empty, in_process(False), library_empty, "`pull(store, ref, unpack=False)` in this process"
            ),
            "(analysis) library pull + unpack, warm": Job(
                library_empty, in_process(True), library_empty, "`pull(store, ref)` in this process"
            ),
        }
        if shutil.which("skopeo"):
            skopeo = ["skopeo", "copy", "-q", "--src-tls-verify=false", f"docker://{reference}", f"oci:{oci}:bench"]
            found["skopeo copy"] = Job(oci_empty, commands(skopeo), oci_empty, shown(skopeo))
            if shutil.which("umoci"):
                unpack = ["umoci", "unpack", "--image", f"{oci}:bench", str(bundle)]
                found["skopeo copy + umoci unpack"] = Job(
                    oci_empty, commands(skopeo, unpack), oci_empty, shown(skopeo, unpack)
                )
        return found

    def agent_store_bytes(self, reference: str) -> int:
        """Bytes under the agent's image store once the pulled image is removed and
        pruned again: what each of its runs started from."""
        remote = self.agent.engine().images
        with contextlib.suppress(Exception):
            remote.remove(reference, force=True)
        remote.prune()
        total = 0
        for directory, _dirs, files in os.walk(self.agent.root.directory / "images"):
            for name in files:
                with contextlib.suppress(OSError):
                    total += os.lstat(os.path.join(directory, name)).st_size
        return total

    def report(
        self, jobs: dict[str, Job], results: dict[str, list[float]], size: int, stored: int, in_agent: float
    ) -> None:
        mib = size / (1 << 20)
        for name, job in jobs.items():
            print(f"- {name}: {job.shown}")
        print(
            f"\nimage: {self.args.layers} gzip layers, {mib:.1f} MiB; {self.args.pull_runs} runs each after one"
            f" warm-up round, alternating; each run into an empty store or directory (the agent's: the image"
            f" removed and pruned before and after each run, untimed). Ours verify digests and store the blobs;"
            f" the agent unpacks the layers after answering, in the background; the in-process CLI and the"
            f" library row with unpack unpack before returning; skopeo copy stores blobs only.\n"
        )
        skopeo = results.get("skopeo copy")
        print("| how | median | min | max | MiB/s | x skopeo copy |")
        print("|---|---:|---:|---:|---:|---:|")
        for name, values in results.items():
            median = statistics.median(values)
            ratio = f"{median / statistics.median(skopeo):.2f}x" if skopeo else "-"
            spread = f"{min(values):.2f} s | {max(values):.2f} s"
            print(f"| {name} | {median:.2f} s | {spread} | {mib / median:.0f} | {ratio} |")
        print(f"\nThe agent's handler time for `POST /v1/images/pull` (its /metrics, mean): {in_agent:.2f} s.")
        if skopeo:
            agent, peer = statistics.median(results["agent"]), statistics.median(skopeo)
            print(
                f"Target: through the agent no slower than skopeo copy: {agent:.2f} s vs {peer:.2f} s:"
                f" **{'met' if agent <= peer else 'missed'}**."
            )
        print(f"(the agent's image store after the runs, the image removed: {stored / (1 << 20):.1f} MiB)\n")

    def cleanup(self) -> list[str]:
        problems: list[str] = []
        for root in self.local_roots:
            problems += root.cleanup()
        return problems


# --- main ---------------------------------------------------------------------------


def leftover_mounts(base: Path) -> list[str]:
    with open("/proc/self/mountinfo") as handle:
        points = [line.split()[4] for line in handle]
    return [point for point in points if point == str(base) or point.startswith(str(base) + "/")]


def unmount_all(base: Path) -> list[str]:
    from reconciler.runtime import linux

    left = leftover_mounts(base)
    for point in sorted(left, key=len, reverse=True):
        with contextlib.suppress(OSError):
            linux.umount2(point, linux.MNT_DETACH)
    return leftover_mounts(base)


@contextlib.contextmanager
def terminated_as_exit() -> Iterator[None]:
    """SIGTERM and SIGHUP unwind through every ``finally`` (the cleanup) as Ctrl-C does."""

    def stop(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("sections", nargs="*", metavar="run|ps|pull", help="default: all three")
    parser.add_argument("--runs", type=int, default=25, help="run: timed runs per command")
    parser.add_argument("--warmup", type=int, default=3, help="run: warm-up rounds")
    profile = parser.add_mutually_exclusive_group()
    profile.add_argument("--profile", action="store_true", default=None, help="run: always show where time goes")
    profile.add_argument("--no-profile", dest="profile", action="store_false", help="run: never")
    parser.add_argument("--containers", type=int, default=300, help="ps: containers running")
    parser.add_argument("--clients", type=int, default=10, help="ps: concurrent clients")
    parser.add_argument("--seconds", type=float, default=20.0, help="ps: seconds per measurement")
    parser.add_argument("--mib", type=int, default=100, help="pull: image size")
    parser.add_argument("--layers", type=int, default=5, help="pull: layers")
    parser.add_argument("--pull-runs", type=int, default=5, help="pull: timed runs per command")
    args = parser.parse_args()
    sections = args.sections or ["run", "ps", "pull"]
    if set(sections) - {"run", "ps", "pull"}:
        parser.error(f"unknown sections {sorted(set(sections) - {'run', 'ps', 'pull'})}: use run, ps, pull")
    if os.geteuid() != 0:
        raise SystemExit("needs root")

    base = Path(tempfile.mkdtemp(prefix=f"{PREFIX}-"))
    env = {**os.environ, "RECONCILE_CONFIG": str(base / "config"), "NO_COLOR": "1"}
    for key in ("RECONCILE_HOST", "RECONCILE_CONTEXT", "RECONCILE_SOCKET", "RECONCILE_ROOT", "RECONCILE_CGROUP_PARENT"):
        env.pop(key, None)
    # An installed CLI runs from .pyc files. With PYTHONDONTWRITEBYTECODE set (as in
    # some shells and CI), a module edited since its .pyc was written is compiled again
    # in every fresh process, which is not what a user's CLI pays: compile first.
    stale = env.pop("PYTHONDONTWRITEBYTECODE", None) is not None
    import compileall

    compileall.compile_dir(str(REPO / "reconciler"), quiet=2)
    agent = Agent(base, env)
    roots = [agent.root]
    ps: PsBench | None = None
    pull: PullBench | None = None
    outcome: dict[str, bool] = {}
    try:
        with terminated_as_exit():
            print(f"## The agent against in-process and peers ({time.strftime('%Y-%m-%d %H:%M')})\n")
            print(f"agent: `{shell(agent.argv())}` (S, R: under {base})\n")
            print(
                "bytecode: reconciler/ compiled before measuring"
                + ("; PYTHONDONTWRITEBYTECODE, set here, unset for the processes measured\n" if stale else "\n")
            )
            agent.start()
            bench = RunBench(base, agent, env, args)
            roots.append(bench.local)
            bench.prepare()  # every section runs the busybox image
            if "run" in sections:
                log("run: measuring")
                outcome["run"] = bench.report(bench.measure())
                if args.profile or (args.profile is None and not outcome["run"]):
                    log("run: profiling")
                    bench.profile()
            if "ps" in sections:
                ps = PsBench(agent, env, args)
                outcome["ps"] = ps.run()
            if "pull" in sections:
                log("pull: measuring")
                pull = PullBench(base, agent, env, args)
                outcome["pull"] = pull.run()
    finally:
        problems: list[str] = []
        if ps is not None:
            with contextlib.suppress(Exception):
                ps.remove()
        agent.stop()
        for root in roots:
            problems += root.cleanup()
        if pull is not None:
            problems += pull.cleanup()
        problems += [f"mount left: {point}" for point in unmount_all(base)]
        shutil.rmtree(base, ignore_errors=True)
        if base.exists():
            problems.append(f"{base} not removed")
        log("cleanup: " + ("; ".join(problems) if problems else f"everything removed ({base})"))
    print("targets: " + ", ".join(f"{name} {'met' if met else 'missed'}" for name, met in outcome.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
