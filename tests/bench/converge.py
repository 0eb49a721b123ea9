#!/usr/bin/env python3
"""How fast the reconcile loop converges a stack, does nothing, tears it down, and idles.

    sudo .venv/bin/python tests/bench/converge.py [--sizes 10,100,300] [--series none,bridge]
                                                  [--agent-size 100] [--idle 10] [--no-peers] [--profile]

Not part of pytest: a runnable script that prints markdown tables.

1. ``reconcile --once DIR`` on an empty host, for stacks of N busybox ``sleep 3600``
   containers (``init: true``, ``stop_grace_period: 0.1s``) and one Image imported from
   a tarball: one series with ``network_mode: none``, one on a bridge Network object
   (a /22, so 300 fit). Then no-op passes on the largest converged stack, broken down
   into interpreter start, imports, load/validate, observe, plan and apply (the same
   ``one_pass`` run in a fresh interpreter with its phases timed, and warm, as the
   agent runs it). Then the teardown: a directory holding only ``stack.yaml`` with
   ``--prune-volumes``.
2. The peer: ``docker compose up -d`` (or ``docker-compose``) against the dockerd of
   ``../shared/bench/peers.sh setup`` (``unix:///tmp/peer-docker.sock``, image
   ``busybox:local``), same sizes and networks, then ``down``. When no compose is
   installed (nothing is installed by this script) that is said, and a stand-in runs
   instead: one process doing what compose does through the Engine API (create and
   start every service, 64 at a time as compose's default parallel limit), clearly
   labelled as such.
3. The agent's idle cost: ``reconcile agent DIR --resync 30`` on the converged stack
   of ``--agent-size`` containers: after its first pass, RSS, PSS and CPU time over
   ``--idle`` seconds (and the embedded DNS daemon's, which a bridge network starts).

Everything lives in a temporary root and a cgroup parent of its own; it is all
removed at the end, on failure too, and the script checks that no ``rc-``/``rv``
link, cgroup or mount of its run remains.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import http.client
import io
import json
import os
import pstats
import queue
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO))

VENV_PYTHON = REPO / ".venv" / "bin" / "python"
PYTHON = str(VENV_PYTHON) if VENV_PYTHON.exists() else sys.executable
PEER_SOCKET = "/tmp/peer-docker.sock"
PEER_IMAGE = "busybox:local"
COMPOSE_PARALLEL_LIMIT = 64  # compose's default COMPOSE_PARALLEL_LIMIT
#: The stand-in's ``down`` runs fewer at a time: 64 concurrent stop+remove calls once
#: wedged dockerd 20.10 here (every later call on a container or network hung).
DOWN_PARALLEL = 8
API_TIMEOUT = 120.0  # seconds for one Engine API call
PEER_PROJECTS: list[str] = []  # compose projects made on the peer dockerd, removed at the end
TICKS = os.sysconf("SC_CLK_TCK")
MIB = 1024 * 1024


# --- the stack ----------------------------------------------------------------


@dataclass
class Run:
    """One series at one size: its own state root, manifests and cgroup parent."""

    series: str  # "none" or "bridge"
    size: int
    base: Path
    cgroup_parent: str
    stack: str
    network: str
    subnet: str
    clean: bool = True  # nothing of it exists (not yet, or no longer)

    @property
    def root(self) -> Path:
        return self.base / "root"

    @property
    def directory(self) -> Path:
        return self.base / "stack"

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "RECONCILE_ROOT": str(self.root),
            "RECONCILE_CGROUP_PARENT": self.cgroup_parent,
            "NO_COLOR": "1",
        }


def write_stack(run: Run, tarball: Path) -> None:
    """N containers of ``sleep 3600`` from one imported Image, on no network or on one
    bridge Network, in one file (as a generated stack would be)."""
    run.directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(tarball, run.directory / "base.tar")
    (run.directory / "stack.yaml").write_text(f"name: {run.stack}\n")
    parts = [
        "apiVersion: reconcile/v1\nkind: Image\nmetadata: {name: base}\n"
        f'spec: {{import: {{path: base.tar}}, tag: "{run.stack}-base:1"}}\n'
    ]
    if run.series == "bridge":
        parts.append(
            "apiVersion: reconcile/v1\nkind: Network\n"
            f"metadata: {{name: {run.network}}}\nspec: {{subnet: {run.subnet}}}\n"
        )
        network = f"  networks: [{run.network}]\n"
    else:
        network = "  network_mode: none\n"
    for index in range(run.size):
        parts.append(
            f"apiVersion: reconcile/v1\nkind: Container\nmetadata: {{name: c{index:03d}}}\n"
            'spec:\n  image: base\n  init: true\n  stop_grace_period: 0.1s\n  command: ["sleep", "3600"]\n' + network
        )
    (run.directory / "objects.yaml").write_text("---\n".join(parts))


def objects_in(run: Run) -> int:
    return run.size + 1 + (run.series == "bridge")


#: Turns off the no-op shortcut (``reconciler.control.converged``): every pass is a full one.
FULL_PASS = {"RECONCILE_NO_SHORTCUT": "1"}

#: ``control.converged``: the stats a full pass takes of its inputs (before reading the
#: manifests, before observing, after applying) and the record it leaves for the shortcut.
FINGERPRINTS = "fingerprints (the shortcut's record)"


def cli(
    run: Run, *args: str, timeout: float = 1800, env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], float]:
    """``python -m reconciler ARGS`` and its wall time, as a user (or CI) runs it."""
    started = time.perf_counter()
    result = subprocess.run(
        [PYTHON, "-m", "reconciler", *args],
        env={**run.env, **(env or {})},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return result, time.perf_counter() - started


def once(
    run: Run, directory: Path, *flags: str, env: dict[str, str] | None = None
) -> tuple[int, dict[str, Any], float]:
    """One ``--once`` pass with ``-o json``: exit code, the JSON report, wall seconds."""
    result, wall = cli(run, "--once", str(directory), "-o", "json", *flags, env=env)
    try:
        report: dict[str, Any] = json.loads(result.stdout)
    except json.JSONDecodeError:
        report = {"results": [], "error": result.stderr.strip()[-2000:]}
    if result.returncode not in (0, 2) and "error" not in report:
        report["error"] = result.stderr.strip()[-2000:]
    return result.returncode, report, wall


def outcomes(report: dict[str, Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in report.get("results", []):
        counts[row["outcome"]] = counts.get(row["outcome"], 0) + 1
    return counts


def failures(report: dict[str, Any], limit: int = 5) -> str:
    rows = [
        f"{r['key']}: {r['outcome']}: {r['reason']}" for r in report.get("results", []) if r["outcome"] != "created"
    ]
    text = "; ".join(rows[:limit]) + (f" (+{len(rows) - limit} more)" if len(rows) > limit else "")
    return text or str(report.get("error", ""))


def teardown(run: Run) -> tuple[int, dict[str, Any], float]:
    """A directory with only ``stack.yaml`` (same stack) and ``--prune-volumes``:
    the whole stack goes."""
    down = run.base / "down"
    down.mkdir(exist_ok=True)
    (down / "stack.yaml").write_text(f"name: {run.stack}\n")
    return once(run, down, "--prune-volumes")


# --- the no-op pass, phase by phase (in a fresh interpreter: --phases) -----------


#: A fresh interpreter that imports what ``python -m reconciler --once`` imports (the
#: CLI entry, then what the apply command and ``one_pass`` import when they run: the
#: engine, its stacks group, the loop's modules and the drivers), timing both, then
#: loads this file and runs ``timed_passes``. Its argv: this file, DIR, ROOT,
#: CGROUP_PARENT, WARM, PROFILE (0 or 1).
PHASES_PROBE = """
import time
started = time.perf_counter()
import reconciler.cli.main
entry = time.perf_counter() - started
import reconciler.cli.connect, reconciler.cli.manifest_commands
import reconciler.engine.core, reconciler.engine.images, reconciler.engine.stacks, reconciler.engine.wiring
import reconciler.control.once, reconciler.control.apply, reconciler.control.converged, reconciler.control.drivers
import reconciler.control.events, reconciler.control.observe, reconciler.images.resolve, reconciler.images.store
import reconciler.model.image, reconciler.network.manager, reconciler.plan, reconciler.runtime.containers
import reconciler.volumes.local
imports = time.perf_counter() - started - entry
import runpy, sys
bench = runpy.run_path(sys.argv[1], run_name="converge_child")
bench["timed_passes"](sys.argv[2:], entry=entry, imports=imports, started=started)
"""


def timed_passes(argv: list[str], *, entry: float, imports: float, started: float) -> None:
    """Time ``one_pass`` phase by phase (in the ``PHASES_PROBE`` interpreter): wrap the
    functions it calls (the very ones, looked up at call time), run it cold once, then
    warm as the agent does (one ``Engine`` for every pass, its drivers built on the
    first). With profiling the cold pass runs under cProfile, each applier step in its
    worker thread too (cProfile sees one thread only), merged. Prints JSON, with the
    time spent around the cold pass so the parent can tell interpreter shutdown from
    the rest."""
    import gc

    import reconciler.plan as plan_module
    from reconciler.control import apply, converged, observe
    from reconciler.control import once as once_module
    from reconciler.engine.core import Engine
    from reconciler.engine.wiring import EngineConfig
    from reconciler.images import resolve
    from reconciler.network import manager

    directory, root, cgroup_parent, warm, profile = argv[0], argv[1], argv[2], int(argv[3]), argv[4] == "1"
    spent: dict[str, float] = {}

    def timed(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*a: Any, **k: Any) -> Any:
            t = time.perf_counter()
            try:
                return function(*a, **k)
            finally:
                spent[name] = spent.get(name, 0.0) + time.perf_counter() - t

        return wrapper

    once_module.load = timed("load + validate", once_module.load)
    resolve.digests = timed("image digests", resolve.digests)
    manager.NetworkManager.__init__ = timed("open state (sqlite, nftables)", manager.NetworkManager.__init__)  # type: ignore[method-assign]
    observe.observe = timed("observe", observe.observe)
    plan_module.plan = timed("plan", plan_module.plan)
    apply.Applier.apply = timed("apply", apply.Applier.apply)  # type: ignore[method-assign]
    once_module._report = timed("report", once_module._report)
    converged.fingerprint = timed(FINGERPRINTS, converged.fingerprint)
    converged.record = timed(FINGERPRINTS, converged.record)
    profiles: list[cProfile.Profile] = []
    if profile:
        step = apply.Applier._step
        collected = threading.Lock()

        def profiled_step(self: Any, *a: Any) -> None:
            one = cProfile.Profile()
            try:
                one.runcall(step, self, *a)
            finally:
                with collected:
                    profiles.append(one)

        apply.Applier._step = profiled_step  # type: ignore[method-assign,assignment]
    # as `reconcile --once DIR --root ROOT --cgroup-parent PARENT` builds them
    engine = Engine(EngineConfig(root=root, cgroup_parent=cgroup_parent))
    options = once_module.Options(directory=directory)
    gc.disable()  # as `reconcile --once` runs
    runs: list[dict[str, float]] = []
    before_cold = time.perf_counter() - started - entry - imports
    after_cold = 0.0
    try:
        for attempt in range(1 + warm):
            spent.clear()
            t = time.perf_counter()
            if profile and attempt == 0:
                main_thread = cProfile.Profile()
                report = main_thread.runcall(once_module.one_pass, engine, options)
                profiles.insert(0, main_thread)
            else:
                report = once_module.one_pass(engine, options)
            total = time.perf_counter() - t
            runs.append({**spent, "one_pass": total, "code": report["exit_code"]})
            if attempt == 0:
                after_cold = time.perf_counter()
    finally:
        engine.close()  # as the CLI closes it once the pass is done
    profile_text = ""
    if profiles:
        buffer = io.StringIO()
        stats = pstats.Stats(profiles[0], stream=buffer)
        for one in profiles[1:]:
            stats.add(one)
        stats.sort_stats("tottime").print_stats(20)
        stats.sort_stats("cumulative").print_stats(30)
        if len(profiles) > 1:
            buffer.write(f"(main thread and {len(profiles) - 1} applier steps in worker threads, merged)\n")
        profile_text = buffer.getvalue()
    document = {"entry": entry, "imports": imports, "runs": runs, "profile": profile_text}
    document["around_cold"] = before_cold + time.perf_counter() - after_cold
    print(json.dumps(document), flush=True)


def phases(run: Run, *, warm: int, profile: bool) -> dict[str, Any]:
    """The phase-timed passes in a fresh interpreter (``PHASES_PROBE``), and its wall."""
    command = [PYTHON, "-c", PHASES_PROBE, str(Path(__file__).resolve()), str(run.directory), str(run.root)]
    command += [run.cgroup_parent, str(warm), "1" if profile else "0"]
    # as reconciler.cli.main sets it; and the full pass, not the shortcut, is what is broken down
    env = {**run.env, "PYDANTIC_DISABLE_PLUGINS": "__all__", **FULL_PASS}
    t = time.perf_counter()
    result = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=1800)
    wall = time.perf_counter() - t
    if result.returncode != 0:
        raise RuntimeError(f"phase timing failed: {result.stderr.strip()[-2000:]}")
    document: dict[str, Any] = json.loads(result.stdout)
    document["wall"] = wall
    return document


def interpreter_start() -> float:
    """``python -c pass`` in the venv: what every CLI call pays before any import."""
    walls = []
    for _ in range(7):
        t = time.perf_counter()
        subprocess.run([PYTHON, "-c", "pass"], check=True)
        walls.append(time.perf_counter() - t)
    return statistics.median(walls)


# --- the agent at idle ------------------------------------------------------------


def proc_status(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as handle:
        return {k: v.strip() for k, _, v in (line.partition(":") for line in handle)}


def proc_kib(pid: int, field_name: str, source: str = "status") -> int:
    if source == "status":
        return int(proc_status(pid)[field_name].split()[0])
    with open(f"/proc/{pid}/smaps_rollup") as handle:
        for line in handle:
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    return 0


def cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)


@dataclass
class Idle:
    name: str
    rss_mib: float
    pss_mib: float
    cpu_percent: float
    threads: int


def sample_idle(pids: dict[str, int], seconds: float) -> list[Idle]:
    before = {name: cpu_ticks(pid) for name, pid in pids.items()}
    peak = {name: 0 for name in pids}
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        for name, pid in pids.items():
            peak[name] = max(peak[name], proc_kib(pid, "VmRSS"))
        time.sleep(0.5)
    wall = time.monotonic() - started
    rows = []
    for name, pid in pids.items():
        used = (cpu_ticks(pid) - before[name]) / TICKS
        rss = max(peak[name], proc_kib(pid, "VmRSS"))
        pss = proc_kib(pid, "Pss", "smaps")
        threads = int(proc_status(pid)["Threads"])
        rows.append(Idle(name, rss / 1024, pss / 1024, 100 * used / wall, threads))
    return rows


@dataclass
class AgentResult:
    first_pass: dict[str, Any] = field(default_factory=dict)
    idle: list[Idle] = field(default_factory=list)
    passes_while_idle: int = 0
    stop_seconds: float = 0.0
    error: str = ""


def agent_idle(run: Run, seconds: float) -> AgentResult:
    """Start the agent on a converged stack, wait for its first pass, sample it idle,
    stop it with SIGTERM."""
    outcome = AgentResult()
    command = [PYTHON, "-m", "reconciler", "agent", str(run.directory), "--resync", "30"]
    process = subprocess.Popen(
        command, env=run.env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    lines: queue.Queue[dict[str, Any]] = queue.Queue()

    def read() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            with contextlib.suppress(json.JSONDecodeError):
                lines.put(json.loads(line))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 600
        while not outcome.first_pass:
            record = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            if record.get("event") == "pass":
                outcome.first_pass = record
        time.sleep(0.5)  # let the pass's last writes settle
        pids = {"agent": process.pid}
        dns_pid = run.root / "dns.pid"
        if dns_pid.exists():
            with contextlib.suppress(ValueError):
                pid = int(dns_pid.read_text().split()[0])
                if os.path.exists(f"/proc/{pid}"):
                    pids["embedded DNS daemon"] = pid
        outcome.idle = sample_idle(pids, seconds)
        while not lines.empty():
            outcome.passes_while_idle += lines.get().get("event") == "pass"
    except queue.Empty:
        outcome.error = "no first pass within 600 s"
    finally:
        t = time.perf_counter()
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            outcome.error += " agent ignored SIGTERM for 60 s; killed"
            process.kill()
            process.wait()
        outcome.stop_seconds = time.perf_counter() - t
        reader.join(timeout=5)
    return outcome


# --- the peer: docker compose, or an Engine API stand-in -----------------------------


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.socket_path)
        self.sock = sock


class Engine:
    """A few Docker Engine API calls, one keep-alive connection per thread (as compose
    is one process issuing API calls)."""

    def __init__(self, path: str, *, timeout: float = API_TIMEOUT) -> None:
        self.path = path
        self.timeout = timeout
        self.local = threading.local()

    def call(self, method: str, url: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        connection: UnixConnection | None = getattr(self.local, "connection", None)
        if connection is None:
            connection = self.local.connection = UnixConnection(self.path, self.timeout)
        payload = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        connection.request(method, url, body=payload, headers=headers)
        response = connection.getresponse()
        data = response.read()
        return response.status, json.loads(data) if data.strip() else None

    def check(self, method: str, url: str, body: dict[str, Any] | None = None) -> Any:
        status, data = self.call(method, url, body)
        if status >= 300:
            raise RuntimeError(f"{method} {url}: {status} {data}")
        return data


def peer_available() -> str:
    """Why the peer cannot run, or '' when dockerd answers and has the image. Networks
    are listed too: a wedged dockerd still lists images but not networks."""
    if not os.path.exists(PEER_SOCKET):
        return f"no dockerd at {PEER_SOCKET} (run ../shared/bench/peers.sh setup)"
    engine = Engine(PEER_SOCKET, timeout=15)
    try:
        status, _ = engine.call("GET", f"/images/{PEER_IMAGE}/json")
        engine.call("GET", "/networks")
    except OSError as exc:
        return f"dockerd at {PEER_SOCKET} does not answer ({type(exc).__name__}: {exc}; restart it with peers.sh)"
    return "" if status == 200 else f"dockerd has no image {PEER_IMAGE}"


def find_compose() -> tuple[list[str], str] | None:
    """The compose command and its version, or None: ``docker compose`` (a CLI
    plugin, tried with each docker client) or the ``docker-compose`` binary."""
    env = {**os.environ, "DOCKER_HOST": f"unix://{PEER_SOCKET}"}
    candidates = [[d, "compose"] for d in dict.fromkeys(filter(None, (shutil.which("docker"), "/usr/bin/docker")))]
    if shutil.which("docker-compose"):
        candidates.append([str(shutil.which("docker-compose"))])
    for command in candidates:
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            result = subprocess.run([*command, "version"], env=env, capture_output=True, text=True, timeout=30)
            if result.returncode == 0:
                return command, result.stdout.strip().splitlines()[0]
    return None


def compose_file(path: Path, size: int, series: str) -> None:
    services = []
    for index in range(size):
        service = f"  c{index:03d}:\n    image: {PEER_IMAGE}\n    command: [sleep, '3600']\n    init: true\n"
        # whole seconds: docker-compose 1.29 sends 100ms as StopTimeout 0.1, which dockerd
        # refuses (an integer); `down -t 0` does not wait for it anyway
        service += "    stop_grace_period: 1s\n" + ("    network_mode: none\n" if series == "none" else "")
        services.append(service)
    path.write_text("services:\n" + "".join(services))


def compose_run(command: list[str], work: Path, size: int, series: str) -> tuple[float, float, str]:
    """``compose up -d`` then ``compose down``: both wall times, and an error if any.

    docker-compose 1 deadlocks when a project has more services than
    ``COMPOSE_PARALLEL_LIMIT`` (64 by default): each service's operation holds a slot
    of the global limit while waiting for its container's, which never comes
    (docker/compose#5864, #8226). Its maintainers' workaround is a limit above twice
    the services, which is used here for v1: more parallelism than its default, so if
    anything it flatters compose."""
    env = {**os.environ, "DOCKER_HOST": f"unix://{PEER_SOCKET}"}
    if command[-1] != "compose":
        env["COMPOSE_PARALLEL_LIMIT"] = str(max(COMPOSE_PARALLEL_LIMIT, 2 * size + 2))
    project = f"rcbench{uuid.uuid4().hex[:8]}"
    PEER_PROJECTS.append(project)
    file = work / f"compose-{series}-{size}.yaml"
    compose_file(file, size, series)
    base = [*command, "-p", project, "-f", str(file)]
    error = ""
    t = time.perf_counter()
    up = subprocess.run([*base, "up", "-d"], env=env, capture_output=True, text=True, timeout=3600)
    up_wall = time.perf_counter() - t
    if up.returncode != 0:
        error = up.stderr.strip()[-500:]
    t = time.perf_counter()
    down = subprocess.run([*base, "down", "-t", "0"], env=env, capture_output=True, text=True, timeout=3600)
    down_wall = time.perf_counter() - t
    if down.returncode != 0:
        error += " down: " + down.stderr.strip()[-500:]
    return up_wall, down_wall, error


def api_standin(size: int, series: str) -> tuple[float, float, str]:
    """What ``compose up -d`` does, through the Engine API from one process: the
    project network (bridge series), then create + start of every service, at most
    COMPOSE_PARALLEL_LIMIT at a time; ``down``: stop (t=0) + remove each, the network."""
    engine = Engine(PEER_SOCKET)
    project = f"rcbench{uuid.uuid4().hex[:8]}"
    PEER_PROJECTS.append(project)
    network = f"{project}_default"
    names = [f"{project}-c{index:03d}-1" for index in range(size)]
    error = ""

    def up(name: str) -> None:
        host = {"Init": True, "NetworkMode": "none" if series == "none" else network}
        body = {
            "Image": PEER_IMAGE,
            "Cmd": ["sleep", "3600"],
            "Labels": {"com.docker.compose.project": project},
            "StopTimeout": 0,
            "HostConfig": host,
        }
        engine.check("POST", f"/containers/create?name={name}", body)
        engine.check("POST", f"/containers/{name}/start")

    def down(name: str) -> None:
        engine.call("POST", f"/containers/{name}/stop?t=0")
        engine.call("DELETE", f"/containers/{name}?force=true")

    t = time.perf_counter()
    try:
        if series == "bridge":
            engine.check("POST", "/networks/create", {"Name": network, "Driver": "bridge", "CheckDuplicate": True})
        with futures.ThreadPoolExecutor(COMPOSE_PARALLEL_LIMIT) as pool:
            for result in pool.map(up, names):
                del result
    except Exception as exc:  # reported in the table; down still runs
        error = str(exc)[:300]
    up_wall = time.perf_counter() - t
    t = time.perf_counter()
    try:
        with futures.ThreadPoolExecutor(DOWN_PARALLEL) as pool:
            list(pool.map(down, names))
        if series == "bridge":
            engine.call("DELETE", f"/networks/{network}")
    except OSError as exc:  # a timeout: dockerd stopped answering
        error += f" down: {type(exc).__name__}: {exc}"
    return up_wall, time.perf_counter() - t, error.strip()


def peer_cleanup() -> list[str]:
    """Remove every container and network of this run's projects from the peer
    dockerd (whatever ``down`` missed); what could not be removed. A dockerd that
    stops answering ends it at once (every call would wait API_TIMEOUT)."""
    if not PEER_PROJECTS or not os.path.exists(PEER_SOCKET):
        return []
    engine = Engine(PEER_SOCKET)
    left: list[str] = []
    for index, project in enumerate(PEER_PROJECTS):
        try:
            left += peer_project_cleanup(engine, project)
        except OSError as exc:
            projects = ", ".join(PEER_PROJECTS[index:])
            return [*left, f"docker projects {projects} on {PEER_SOCKET}: dockerd does not answer ({exc})"]
    return left


def peer_project_cleanup(engine: Engine, project: str) -> list[str]:
    left = []
    label = urllib.parse.quote(json.dumps({"label": [f"com.docker.compose.project={project}"]}))
    for attempt in range(2):
        _, found = engine.call("GET", f"/containers/json?all=1&filters={label}")
        for container in found or []:
            if attempt:
                left.append(f"docker container {container['Names'][0]}")
            else:
                engine.call("DELETE", f"/containers/{container['Id']}?force=true")
    _, networks = engine.call("GET", "/networks?filters=" + urllib.parse.quote(json.dumps({"name": [project]})))
    for network in networks or []:
        status, _ = engine.call("DELETE", f"/networks/{network['Id']}")
        if status >= 300:
            left.append(f"docker network {network['Name']}")
    return left


# --- cleanup --------------------------------------------------------------------------


def run_links(run: Run) -> set[str]:
    """The interface names of this run: bridge and host veths hash the root with the
    network and container names (others' tests make rc-/rv links at the same time)."""
    from reconciler.network import links

    if run.series != "bridge":
        return set()
    root = os.path.abspath(run.root)
    names = {links.bridge_name(f"{root}\0{run.network}")}
    return names | {links.host_veth_name(f"{root}\0c{i:03d}", run.network) for i in range(run.size)}


def nft_tables() -> set[str]:
    listed = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, check=False).stdout
    return {line.split()[-1] for line in listed.splitlines() if line.startswith("table ")}


def mounts_under(path: Path) -> list[str]:
    with open("/proc/self/mountinfo") as handle:
        return [line.split()[4] for line in handle if line.split()[4].startswith(str(path) + "/")]


def listed(run: Run, *command: str) -> list[dict[str, Any]]:
    result, _ = cli(run, *command, "-o", "json", timeout=300)
    try:
        rows: list[dict[str, Any]] = json.loads(result.stdout or "[]")
    except json.JSONDecodeError:
        return []
    return rows


def leftovers(run: Run) -> list[str]:
    """Whatever of this run still exists: containers, networks, volumes (as the CLI
    lists them), links, our nftables table, the DNS daemon, mounts, cgroups."""
    from reconciler.network.manager import table_for
    from reconciler.runtime import cgroups

    left: list[str] = []
    if run.root.exists():
        left += [f"container {c['name']} ({c['status']})" for c in listed(run, "ps", "-a")]
        left += [f"network {n['Name']}" for n in listed(run, "network", "ls")]
        left += [f"volume {v['Name']}" for v in listed(run, "volume", "ls")]
        dns = run.root / "dns.pid"
        with contextlib.suppress(OSError, ValueError, IndexError):
            if os.path.exists(f"/proc/{int(dns.read_text().split()[0])}"):
                left.append("embedded DNS daemon")
    left += [f"link {name}" for name in sorted(run_links(run) & set(os.listdir("/sys/class/net")))]
    if table_for(str(run.root)) in nft_tables():
        left.append(f"nftables table {table_for(str(run.root))}")
    left += [f"mount {m}" for m in mounts_under(run.base)]
    for parent in cgroups.new_cgroup("x", parent=run.cgroup_parent).parent_dirs():
        if os.path.isdir(parent):
            left += [f"cgroup {parent}/{d}" for d in os.listdir(parent) if os.path.isdir(os.path.join(parent, d))]
    return left


def summarize(left: list[str], limit: int = 4) -> str:
    return ", ".join(left[:limit]) + (f" (+{len(left) - limit} more)" if len(left) > limit else "")


def reap() -> None:
    """Monitors of removed containers were reparented to us (child subreaper)."""
    while True:
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                return
        except ChildProcessError:
            return


def scrub(run: Run) -> None:
    """Remove what a teardown pass left: through the CLI first (``rm -f``, the
    teardown again, ``network rm``, ``volume rm``), then by hand as the test fixtures
    do (kill the recorded processes, destroy cgroups, unmount network namespaces)."""
    from reconciler.runtime import cgroups, netns
    from reconciler.runtime.state import StateStore

    if not run.root.exists():
        return
    names = [c["name"] for c in listed(run, "ps", "-a")]
    if names:
        cli(run, "rm", "-f", *names, timeout=600)
    with contextlib.suppress(Exception):
        teardown(run)
    for network in listed(run, "network", "ls"):
        cli(run, "network", "rm", network["Name"], timeout=300)
    for volume in listed(run, "volume", "ls"):
        cli(run, "volume", "rm", volume["Name"], timeout=300)
    store = StateStore(str(run.root))
    for name in store.names():
        state = store.read(name)
        for pid in (state.pid, state.monitor_pid) if state else ():
            if pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
    time.sleep(0.2)
    reap()
    for name in store.names():
        with contextlib.suppress(cgroups.CgroupError):
            cgroups.new_cgroup(name, parent=run.cgroup_parent).destroy()
        netns.remove(store.path(name, "netns"))
    reap()


def remove_cgroup_parents(cgroup_parent: str) -> list[str]:
    from reconciler.runtime import cgroups

    parents = cgroups.new_cgroup("x", parent=cgroup_parent).parent_dirs()
    for directory in parents:
        if os.path.isdir(directory):
            with contextlib.suppress(OSError):
                os.rmdir(directory)
    return [d for d in parents if os.path.exists(d)]


@contextlib.contextmanager
def workspace() -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="reconcile-bench-converge-"))
    try:
        yield base
    finally:
        for mount in sorted(mounts_under(base), key=len, reverse=True):
            subprocess.run(["umount", "-l", mount], check=False)
        shutil.rmtree(base, ignore_errors=True)


# --- output ----------------------------------------------------------------------------


def table(header: list[str], rows: list[list[str]], align: str = "") -> str:
    align = align or "l" + "r" * (len(header) - 1)
    marks = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(marks) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def secs(seconds: float) -> str:
    return f"{seconds:.2f} s"


def say(text: str) -> None:
    print(text, flush=True)


def progress(text: str) -> None:
    print(f"# {text}", file=sys.stderr, flush=True)


# --- the benchmark -----------------------------------------------------------------------


@dataclass
class Row:
    series: str
    size: int
    converge: float = 0.0
    reported: float = 0.0
    teardown: float = 0.0
    ok: str = ""


def new_run(args: argparse.Namespace, base: Path, series: str, size: int, label: str = "") -> Run:
    tag = uuid.uuid4().hex[:6]
    return Run(
        series=series,
        size=size,
        base=base / f"{series}-{size}{label}",
        cgroup_parent=f"reconcile-bench-{tag}",
        stack=f"bench{tag}",
        network=f"net{tag}",
        subnet=args.subnet,
    )


def converge_and_check(run: Run) -> tuple[bool, dict[str, Any], float, str]:
    """``--once`` from empty: converged?, the report, wall seconds, what went wrong."""
    run.clean = False
    code, report, wall = once(run, run.directory)
    counts = outcomes(report)
    converged = code == 2 and counts == {"created": objects_in(run)}
    return converged, report, wall, "" if converged else f"exit {code}: {failures(report)}"


def teardown_and_check(run: Run) -> tuple[float, str]:
    """The teardown pass; then anything left is said, and scrubbed so the next run
    starts clean."""
    code, report, wall = teardown(run)
    problems = [] if code in (0, 2) else [f"exit {code}"]
    problems += [
        f"{r['key']}: {r['outcome']}: {r['reason']}" for r in report.get("results", []) if r["outcome"] != "deleted"
    ]
    left = leftovers(run)
    if left:
        problems.append(f"left after it: {summarize(left)}")
        scrub(run)
    reap()
    run.clean = not leftovers(run)
    return wall, summarize(problems, 3)


def bench_ours(args: argparse.Namespace, base: Path, runs: list[Run]) -> None:
    from tests.test_cli_containers import busybox_tarball

    tarball = busybox_tarball(base / "busybox.tar")
    rows: list[Row] = []
    largest = max(args.sizes)
    sections: list[str] = []
    for series in args.series:
        for size in args.sizes:
            run = new_run(args, base, series, size)
            runs.append(run)
            write_stack(run, tarball)
            row = Row(series, size)
            rows.append(row)
            progress(f"{series} x{size}: converging")
            converged, report, row.converge, problem = converge_and_check(run)
            row.reported = float(report.get("seconds", 0.0))
            row.ok = "yes" if converged else f"NO: {problem}"
            if converged and size == largest:
                progress(f"{series} x{size}: no-op passes")
                sections.append(noop_section(args, run))
            if converged and size == args.agent_size:
                progress(f"{series} x{size}: agent idle")
                sections.append(agent_section(args, run))
            progress(f"{series} x{size}: teardown")
            row.teardown, problem = teardown_and_check(run)
            if problem:
                row.ok += f"; teardown: {problem}"
        if args.profile:
            progress(f"{series} x{largest}: profiled converge")
            run = new_run(args, base, series, largest, "-profiled")
            runs.append(run)
            write_stack(run, tarball)
            run.clean = False
            text = phases(run, warm=0, profile=True)["profile"]
            title = f"cProfile of a converge of {largest} ({series}), in-process, applier threads merged"
            sections.append(profile_block(title, text))
            teardown_and_check(run)
    say("## 1. Converge from empty with `reconcile --once DIR`\n")
    say(
        table(
            ["network", "containers", "converge (wall)", "per container", "pass (JSON seconds)", "teardown", "ok"],
            [
                [
                    "none" if r.series == "none" else f"bridge ({args.subnet})",
                    str(r.size),
                    secs(r.converge),
                    ms(r.converge / r.size),
                    secs(r.reported),
                    secs(r.teardown),
                    r.ok,
                ]
                for r in rows
            ],
            "lrrrrrl",
        )
    )
    say(
        "\nconverge: wall time of the whole CLI call, from an empty root (image import included); "
        "teardown: `--once` on a directory with only `stack.yaml`, `--prune-volumes`.\n"
    )
    for section in sections:
        say(section)


PHASES = [
    "load + validate",
    "open state (sqlite, nftables)",
    "image digests",
    "observe",
    "plan",
    "apply",
    "report",
    FINGERPRINTS,
]


def noop_section(args: argparse.Namespace, run: Run) -> str:
    """No-op passes: the first after the converge (a full pass, which records itself),
    then ``--noop-runs`` with the shortcut and as many full ones (shortcut off), then
    the full pass broken down into phases."""
    code, first_report, first_wall = once(run, run.directory)
    codes = {code}
    walls, reported, text_walls, full_walls, shortcuts = [], [], [], [], 0
    for _ in range(args.noop_runs):
        code, report, wall = once(run, run.directory)
        codes.add(code)
        walls.append(wall)
        shortcuts += bool(report.get("shortcut"))
        reported.append(float(report.get("seconds", 0.0)))
        result, wall = cli(run, "--once", str(run.directory))
        codes.add(result.returncode)
        text_walls.append(wall)
        result, wall = cli(run, "--once", str(run.directory), env=FULL_PASS)
        codes.add(result.returncode)
        full_walls.append(wall)
    start = interpreter_start()
    # cold probes run one pass and exit, as the CLI does (more passes would leave more
    # garbage for the interpreter's shutdown); one more runs the warm passes
    children = [phases(run, warm=0, profile=False) for _ in range(args.phase_runs)]
    warm_runs = phases(run, warm=args.warm, profile=False)["runs"][1:] if args.warm > 0 else []
    codes |= {int(r["code"]) for child in children for r in child["runs"]} | {int(r["code"]) for r in warm_runs}

    def median(values: Iterable[float]) -> float:
        return float(statistics.median(values))

    def cold(name: str) -> float:
        return median(child["runs"][0].get(name, 0.0) for child in children)

    def warm(name: str) -> float:
        return median(r.get(name, 0.0) for r in warm_runs)

    def rest(runs: list[dict[str, float]]) -> float:
        return median(r["one_pass"] - sum(r.get(n, 0.0) for n in PHASES) for r in runs)

    # each probe's wall less what the CLI does not do (loading this file): what is left
    # after start, imports and the pass is the interpreter's shutdown (the CLI's
    # argparse is not in the probe)
    shutdown = median(
        c["wall"] - start - c["entry"] - c["imports"] - c["runs"][0]["one_pass"] - c["around_cold"] for c in children
    )
    median_wall = statistics.median(text_walls)
    full_wall = statistics.median(full_walls)
    has_warm = args.warm > 0
    rows = [["interpreter start (`python -c pass`)", ms(start), "-"]]
    rows.append(["import reconciler.cli.main (the CLI entry)", ms(median(c["entry"] for c in children)), "-"])
    imports = ms(median(c["imports"] for c in children))
    what = "imports the apply command and one_pass make (engine; manifests, models: pydantic, ruamel.yaml; stores)"
    rows.append([what, imports, "-"])
    rows += [[name, ms(cold(name)), ms(warm(name)) if has_warm else "-"] for name in PHASES]
    warm_rest = ms(rest(warm_runs)) if has_warm else "-"
    rows.append(["rest of one_pass (lock, stores, events)", ms(rest([c["runs"][0] for c in children])), warm_rest])
    rows.append(["**one_pass in all**", f"**{ms(cold('one_pass'))}**", ms(warm("one_pass")) if has_warm else "-"])
    rows.append(["interpreter shutdown (the probe's wall minus the above and its own set-up)", ms(shutdown), "-"])
    probe_total = start + median(c["entry"] + c["imports"] for c in children) + cold("one_pass") + shutdown
    rows.append(["**in all** (compare with the CLI wall above)", f"**{ms(probe_total)}**", "-"])
    verdict = "met" if median_wall < 0.2 else "NOT met"
    lines = [
        f"## No-op `--once` on the converged {run.size} ({run.series})\n",
        f"`reconcile --once DIR` on the converged stack, {args.noop_runs} runs: wall median **{ms(median_wall)}** "
        f"(min {ms(min(text_walls))}, max {ms(max(text_walls))}); with `-o json` {ms(statistics.median(walls))}, "
        f"whose `seconds` median {ms(statistics.median(reported))}; the shortcut (nothing changed since the "
        f"last converged pass) taken in {shortcuts} of {args.noop_runs}; exit codes {sorted(codes)}. "
        f"Target < 200 ms: **{verdict}**.\n",
        f"The first no-op pass after the converge is a full one (it records itself for the shortcut): "
        f"{ms(first_wall)} (`-o json`, shortcut {first_report.get('shortcut')}). With the shortcut off "
        f"(`RECONCILE_NO_SHORTCUT=1`), every pass is a full one: wall median {ms(full_wall)} "
        f"(min {ms(min(full_walls))}, max {ms(max(full_walls))}).\n",
        f"The full pass broken down, median of {args.phase_runs} fresh interpreters that import what the CLI "
        "imports (timed), "
        "then run `reconciler.control.once.one_pass` once with its phases timed; warm: the median of "
        f"{args.warm} passes after the first in one more such process, as the agent runs them:\n",
        table(["phase", "cold (as the CLI)", "warm (as the agent)"], rows),
        "",
    ]
    if args.profile:
        text = phases(run, warm=0, profile=True)["profile"]
        lines += [profile_block(f"cProfile of a cold no-op pass, {run.size} containers ({run.series})", text)]
    return "\n".join(lines)


def profile_block(title: str, text: str) -> str:
    body = "\n".join(line for line in text.strip().splitlines() if line.strip())
    return f"<details><summary>{title}</summary>\n\n```\n{body}\n```\n</details>\n"


def agent_section(args: argparse.Namespace, run: Run) -> str:
    result = agent_idle(run, args.idle)
    lines = [f"## 3. Agent idle on the converged {run.size} ({run.series})\n"]
    if result.error:
        lines.append(f"**error**: {result.error}\n")
    if result.first_pass:
        lines.append(
            f"`reconcile agent DIR --resync 30`: first pass {result.first_pass.get('outcome')} in "
            f"{ms(float(result.first_pass.get('seconds', 0.0)))}; sampled {args.idle:g} s idle "
            f"({result.passes_while_idle} passes meanwhile); SIGTERM to exit {ms(result.stop_seconds)}.\n"
        )
    rows = [
        [
            r.name,
            f"{r.rss_mib:.1f} MiB",
            f"{r.pss_mib:.1f} MiB",
            f"{r.cpu_percent:.2f} %",
            str(r.threads),
        ]
        for r in result.idle
    ]
    if rows:
        lines.append(table(["process", "RSS (peak)", "PSS", "CPU (% of a core)", "threads"], rows))
        agent = result.idle[0]
        rss_ok = "met" if agent.rss_mib < 80 else "NOT met"
        cpu_ok = "met" if agent.cpu_percent < 1 else "NOT met"
        lines.append(f"\nTargets (agent): RSS < 80 MiB **{rss_ok}**; CPU < 1 % of a core **{cpu_ok}**.\n")
    return "\n".join(lines)


def bench_peers(args: argparse.Namespace, base: Path) -> None:
    say("## 2. Peer: `docker compose up -d`\n")
    why = peer_available()
    if why:
        say(f"Skipped: {why}.\n")
        return
    compose = find_compose()
    sizes = [s for s in args.sizes if s <= args.peer_max]
    rows = []
    if compose is None:
        say(
            "Neither `docker compose` (no compose CLI plugin for "
            + ", ".join(dict.fromkeys(filter(None, (shutil.which("docker"), "/usr/bin/docker"))))
            + ") nor `docker-compose` is installed: **compose skipped** (this script installs nothing).\n"
        )
        if args.no_standin:
            return
        say(
            "Stand-in instead (not compose): one process doing what `compose up -d` does through the Engine API "
            f"of the same dockerd: the project network (bridge series), then create + start of each service, "
            f"{COMPOSE_PARALLEL_LIMIT} at a time (compose's default parallel limit); `down`: stop (t=0) and "
            f"remove each, {DOWN_PARALLEL} at a time, then the network. No CLI process per container, so it is a "
            "lower bound of compose.\n"
        )
        label = "Engine API stand-in"
    else:
        say(f"`{' '.join(compose[0])}`: {compose[1]}\n")
        if compose[0][-1] != "compose":
            say(
                "docker-compose 1 deadlocks on projects of more services than `COMPOSE_PARALLEL_LIMIT` "
                "(docker/compose#5864): it runs with a limit of twice the services plus two.\n"
            )
        label = " ".join(compose[0][-2:]) if compose[0][-1] == "compose" else "docker-compose"
    for series, size in [(series, size) for series in args.series for size in sizes]:
        progress(f"peer {series} x{size}")
        if compose is None:
            up, down, error = api_standin(size, series)
        else:
            up, down, error = compose_run(compose[0], base, size, series)
        rows.append([label, series, str(size), secs(up), ms(up / size), secs(down), error or "ok"])
        if "timed out" in error.lower() or peer_available():
            say(f"dockerd stopped answering during {series} x{size}: the rest of the peer series skipped.\n")
            break
    say(table(["peer", "network", "containers", "up -d", "per container", "down", "ok"], rows, "lllrrrl"))
    say("")


def summary(args: argparse.Namespace) -> None:
    with open("/proc/loadavg") as handle:
        load = handle.read().split()[:3]
    say(
        f"Host: {os.cpu_count()} CPUs, load {' '.join(load)} at the start; {sys.version.split()[0]}; "
        f"sizes {','.join(map(str, args.sizes))}; series {','.join(args.series)}.\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[10, 100, 300])
    parser.add_argument("--series", type=lambda s: s.split(","), default=["none", "bridge"])
    parser.add_argument("--subnet", default="10.214.0.0/22", help="the bridge series' Network (default a /22)")
    parser.add_argument("--agent-size", type=int, default=100, help="stack size the agent idles on (0: skip)")
    parser.add_argument("--idle", type=float, default=10.0, help="seconds the idle agent is sampled")
    parser.add_argument("--noop-runs", type=int, default=7, help="no-op --once passes timed on the largest stack")
    parser.add_argument("--warm", type=int, default=5, help="warm in-process passes after the cold one")
    parser.add_argument("--phase-runs", type=int, default=3, help="fresh interpreters timing the no-op's phases")
    parser.add_argument(
        "--profile", action="store_true", help="also cProfile a cold no-op pass and a converge of the largest stack"
    )
    parser.add_argument("--no-peers", action="store_true", help="skip docker")
    parser.add_argument("--peers-only", action="store_true", help="only docker (ours skipped)")
    parser.add_argument("--no-standin", action="store_true", help="no Engine API stand-in when compose is missing")
    parser.add_argument("--peer-max", type=int, default=300, help="largest stack given to docker")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root")
    if set(args.series) - {"none", "bridge"}:
        raise SystemExit("--series takes none and/or bridge")
    from reconciler.runtime import linux

    linux.prctl(linux.PR_SET_CHILD_SUBREAPER, 1)  # detached monitors are reaped here
    runs: list[Run] = []
    summary(args)
    with workspace() as base:
        try:
            if not args.peers_only:
                bench_ours(args, base, runs)
            if not args.no_peers:
                bench_peers(args, base)
        finally:
            problems = cleanup(runs) + peer_cleanup()
    with open("/proc/loadavg") as handle:
        say(f"Load at the end: {' '.join(handle.read().split()[:3])}.\n")
    say("## Cleanup\n")
    if not problems:
        say(
            "Nothing of this run remains: containers, networks, volumes, links, nftables tables, DNS daemons, "
            "mounts, cgroups (parents included), temporary directories."
        )
    for problem in problems:
        say(f"- LEFT BEHIND: {problem}")
    if problems:
        raise SystemExit(1)


def cleanup(runs: list[Run]) -> list[str]:
    """Every run scrubbed (a teardown pass, then by hand), then checked."""
    problems: list[str] = []
    for run in runs:
        if not run.clean:
            progress(f"cleanup {run.series} x{run.size}")
            with contextlib.suppress(Exception):
                teardown(run)
            scrub(run)
        problems += [f"{run.series} x{run.size}: {thing}" for thing in leftovers(run)]
        problems += [f"cgroup parent {d}" for d in remove_cgroup_parents(run.cgroup_parent)]
    reap()
    return problems


if __name__ == "__main__":
    main()
