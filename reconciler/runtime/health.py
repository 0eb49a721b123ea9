"""Container healthchecks, as Docker runs them: a probe exec'd in the container now
and then, and a small state machine that turns probe results into a status.

Worked example (what the agent does for each running container with a healthcheck)::

    config = HealthConfig.from_model(manifest["spec"]["healthcheck"])  # None: no check
    checker = HealthChecker(runtime, "web", config)
    checker.step()        # probes when one is due, updates and persists the state
    read_health(root, "web").status   # "starting" | "healthy" | "unhealthy", any process

The rules are Docker's (moby ``daemon/health.go``):

- a probe passes when it exits 0; any other exit, a timeout or a probe that could
  not run at all (exit code -1) is a failure;
- a pass makes the container ``healthy`` and resets the failing streak;
- while the container is still ``starting`` and within ``start_period`` of its
  start, failures do not count; probes run every ``start_interval`` then;
- otherwise ``retries`` consecutive failures make it ``unhealthy``;
- the first probe runs one interval after the start, not at once;
- zero durations and zero retries mean Docker's defaults (30 s interval and
  timeout, 5 s start interval, 3 retries), as in an image's ``HEALTHCHECK``.

The state lives in ``ROOT/containers/NAME/health.json``, replaced atomically, so
``status`` and ``inspect`` read it from any process; it names the start of the
container it belongs to, so a restarted container starts again from ``starting``
and a restarted agent resumes the streak of one that kept running.

A probe is a forked helper that calls ``Runtime.exec``: exec blocks, and the helper
is what a timeout kills. The helper starts a session of its own first, and every
process of the probe inherits it, including those inside the container's pid
namespace, so "kill the probe" means "kill that session": its process group at
once, then any member still in the container's cgroup. A probe process that
starts a session of its own escapes this, as a daemon escapes its shell.
The helper is reaped by pid: a process running probes must not also reap with
``waitpid(-1)``, which would take the helper's exit status from under it.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import logging
import math
import os
import select
import signal
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Literal, NamedTuple

from reconciler.model import quantities
from reconciler.runtime import cgroups, containers, spawn

logger = logging.getLogger(__name__)

HealthStatus = Literal["starting", "healthy", "unhealthy"]

#: Docker's defaults, used where a duration or the retries are zero or unset.
DEFAULT_INTERVAL = 30.0
DEFAULT_TIMEOUT = 30.0
DEFAULT_START_INTERVAL = 5.0
DEFAULT_RETRIES = 3
#: How much of a probe's output is kept (the end of it: where the error usually is).
MAX_OUTPUT = 4096
#: How many probe results the state keeps, as ``docker inspect`` shows.
MAX_LOG = 5
#: The exit code of a probe that timed out or could not run, as Docker reports it.
PROBE_ERROR = -1
#: Docker runs CMD-SHELL tests with this shell.
SHELL = ("/bin/sh", "-c")

_NANOSECONDS = 1_000_000_000
_MANIFEST_KEYS = {"test", "interval", "timeout", "retries", "start_period", "start_interval", "disable"}


class HealthConfig(NamedTuple):
    """A healthcheck to run. ``test`` is in Docker's form, ``("CMD", *argv)`` or
    ``("CMD-SHELL", command)``; durations are seconds, already defaulted."""

    test: tuple[str, ...]
    interval: float = DEFAULT_INTERVAL
    timeout: float = DEFAULT_TIMEOUT
    retries: int = DEFAULT_RETRIES
    start_period: float = 0.0
    start_interval: float = DEFAULT_START_INTERVAL

    @property
    def argv(self) -> list[str]:
        """What is exec'd in the container."""
        if self.test[0] == "CMD-SHELL":
            return [*SHELL, *self.test[1:]]
        return list(self.test[1:])

    @classmethod
    def from_model(cls, value: object) -> HealthConfig | None:
        """The check to run from a manifest's healthcheck (the model, or its dict
        ``manifest["spec"]["healthcheck"]``) or an image config's Docker-style
        ``Healthcheck`` dict (``Test``, durations in nanoseconds). None when there is
        nothing to run: no healthcheck, ``disable``, ``["NONE"]``, or an image's
        empty ``Test`` (which in Docker means "inherit")."""
        if value is None:
            return None
        dump = getattr(value, "model_dump", None)
        if callable(dump):
            value = dump()
        if not isinstance(value, Mapping):
            raise TypeError(f"a healthcheck is a mapping, not {type(value).__name__}")
        if "Test" in value:
            return _from_image(value)
        return _from_manifest(value)


def _from_manifest(raw: Mapping[str, Any]) -> HealthConfig | None:
    unknown = set(raw) - _MANIFEST_KEYS
    if unknown:
        raise ValueError(f"unknown healthcheck fields: {', '.join(sorted(map(str, unknown)))}")
    if "test" not in raw:
        raise ValueError("a healthcheck needs a test")
    test = raw["test"]
    if isinstance(test, str):
        test = ["CMD-SHELL", test]
    elif isinstance(test, list | tuple) and test and test[0] not in ("CMD", "CMD-SHELL", "NONE"):
        test = ["CMD", *test]
    if raw.get("disable", False) is True:
        return None
    return _build(
        test,
        interval=_seconds(raw.get("interval"), "interval"),
        timeout=_seconds(raw.get("timeout"), "timeout"),
        retries=_retries(raw.get("retries")),
        start_period=_seconds(raw.get("start_period"), "start_period"),
        start_interval=_seconds(raw.get("start_interval"), "start_interval"),
    )


def _from_image(raw: Mapping[str, Any]) -> HealthConfig | None:
    """Unknown keys are ignored here: image configs come from any builder."""
    test = raw["Test"]
    if test is None or (isinstance(test, list) and not test):
        return None
    return _build(
        test,
        interval=_nanoseconds(raw.get("Interval"), "Interval"),
        timeout=_nanoseconds(raw.get("Timeout"), "Timeout"),
        retries=_retries(raw.get("Retries")),
        start_period=_nanoseconds(raw.get("StartPeriod"), "StartPeriod"),
        start_interval=_nanoseconds(raw.get("StartInterval"), "StartInterval"),
    )


def _build(
    test: object, *, interval: float, timeout: float, retries: int, start_period: float, start_interval: float
) -> HealthConfig | None:
    if not isinstance(test, list | tuple) or not all(isinstance(part, str) for part in test):
        raise ValueError(f"a healthcheck test is a list of strings, not {test!r}")
    if test and test[0] == "NONE":
        return None
    if not test or test[0] not in ("CMD", "CMD-SHELL") or len(test) < 2:
        raise ValueError(f'a healthcheck test is ["CMD", arg...] or ["CMD-SHELL", command], not {list(test)!r}')
    return HealthConfig(
        test=tuple(test),
        interval=interval or DEFAULT_INTERVAL,
        timeout=timeout or DEFAULT_TIMEOUT,
        retries=retries or DEFAULT_RETRIES,
        start_period=start_period,
        start_interval=start_interval or DEFAULT_START_INTERVAL,
    )


def _seconds(value: object, field: str) -> float:
    """A manifest duration: seconds, or text such as ``30s``; unset is zero (the default)."""
    if value is None:
        return 0.0
    try:
        return quantities.parse_duration(value)
    except ValueError as exc:
        raise ValueError(f"healthcheck {field}: {exc}") from None


def _nanoseconds(value: object, field: str) -> float:
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"healthcheck {field} must be a whole number of nanoseconds >= 0, not {value!r}")
    return value / _NANOSECONDS


def _retries(value: object) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"healthcheck retries must be a whole number >= 0, not {value!r}")
    return value


# ---------------------------------------------------------------------------- probes


class ProbeResult(NamedTuple):
    """One probe: its exit code (-1: timed out or could not run), the end of its
    output (stdout and stderr together), how long it took in seconds, and when it
    started (wall clock, for display)."""

    exit_code: int
    output: str
    duration: float
    timed_out: bool = False
    started_at: float = 0.0

    @property
    def passed(self) -> bool:
        return self.exit_code == 0


def probe(runtime: containers.Runtime, name: str, config: HealthConfig) -> ProbeResult:
    """Run ``config``'s test in the running container ``name`` and wait for it, at
    most ``config.timeout`` seconds of real time. Never raises for the container's
    sake: a container that is missing or not running is a failed probe that says so.
    Whatever the probe started in the container is gone when this returns."""
    started_at, began = time.time(), time.monotonic()
    try:
        state = runtime.inspect(name)
    except (containers.ContainerError, OSError, ValueError) as exc:
        return ProbeResult(PROBE_ERROR, str(exc), time.monotonic() - began, started_at=started_at)
    if state.status != "running":
        reason = f"container {name!r} is {state.status}, not running: nothing to probe"
        return ProbeResult(PROBE_ERROR, reason, time.monotonic() - began, started_at=started_at)
    out_r, out_w = os.pipe()
    report_r, report_w = os.pipe()
    try:
        helper = os.fork()
    except OSError as exc:
        for fd in (out_r, out_w, report_r, report_w):
            os.close(fd)
        return ProbeResult(PROBE_ERROR, f"cannot start the probe: {exc}", time.monotonic() - began, False, started_at)
    if helper == 0:  # pragma: no cover - runs in the helper; its effects are tested
        os.close(out_r)
        os.close(report_r)
        _run_helper(runtime, name, config.argv, out_w, report_w)
    os.close(out_w)
    os.close(report_w)
    output, timed_out, finished = b"", False, False
    try:
        output, timed_out = _collect(helper, out_r, began + config.timeout)
        finished = not timed_out
    finally:
        if not finished:
            _kill_probe(helper)
        code, report = _finish(runtime, name, helper, report_r, killed=not finished)
        os.close(out_r)
        os.close(report_r)
    text = output.decode(errors="replace")
    if timed_out:
        code, text = PROBE_ERROR, _join(text, f"Health check exceeded timeout ({config.timeout:g}s)")
    elif report:  # "CODE message" from the helper: the probe did not start
        code_text, _, message = report.partition(" ")
        code, text = int(code_text) if code_text.lstrip("-").isdigit() else PROBE_ERROR, _join(text, message)
    return ProbeResult(code, text[-MAX_OUTPUT:], time.monotonic() - began, timed_out, started_at)


def _run_helper(  # pragma: no cover - runs in the helper
    runtime: containers.Runtime, name: str, argv: list[str], out: int, report: int
) -> None:
    """In the forked helper: a new session, then the exec. Always ends in ``_exit``:
    this is a copy of the caller (of pytest, of the agent) and must not go on as one.
    A failure to start is reported as ``CODE message`` through ``report``."""
    code = 255
    try:
        os.setsid()
        devnull = os.open(os.devnull, os.O_RDONLY)
        code = runtime.exec(name, argv, stdout=out, stderr=out, stdin=devnull)
    except spawn.StartError as exc:
        code = exc.exit_code
        _write_report(report, f"{exc.exit_code} {exc}")
    except BaseException as exc:
        _write_report(report, f"{PROBE_ERROR} {exc}")
    finally:
        os._exit(code & 0xFF)


def _write_report(fd: int, message: str) -> None:  # pragma: no cover - in the helper
    with contextlib.suppress(OSError):
        os.write(fd, message.encode(errors="replace"))


def _collect(helper: int, out: int, deadline: float) -> tuple[bytes, bool]:
    """The end of the probe's output, and whether ``deadline`` came first. Done when
    the helper exits, not at end of file: a process the probe left in the background
    may hold the pipe open, and so may a helper forked at the same time by another
    thread (it is a copy of this process, with all its descriptors)."""
    kept = bytearray()
    exited = os.pidfd_open(helper)
    poller = select.poll()  # not select(): an agent may well have descriptors above 1024
    poller.register(out, select.POLLIN)
    poller.register(exited, select.POLLIN)
    try:
        os.set_blocking(out, False)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return bytes(kept), True
            ready = dict(poller.poll(max(1, math.ceil(remaining * 1000))))
            if out in ready and not _drain(out, kept):
                poller.unregister(out)  # end of file: only the exit is left to wait for
            if exited in ready:
                _drain(out, kept)
                return bytes(kept), False
    finally:
        os.close(exited)


def _drain(fd: int, kept: bytearray) -> bool:
    """Read what is there into ``kept`` (trimmed to its end); False at end of file."""
    while True:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return True
        if not data:
            return False
        kept.extend(data)
        del kept[:-MAX_OUTPUT]


def _read_report(fd: int) -> str:
    """What the exited helper wrote; not read to end of file, which may be far off:
    a helper forked meanwhile by another thread holds a copy of the write end."""
    os.set_blocking(fd, False)
    chunks = []
    with contextlib.suppress(BlockingIOError):
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def _join(output: str, message: str) -> str:
    return f"{output.rstrip()}\n{message}" if output.strip() else message


def _exit_code(status: int) -> int:
    return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


def _finish(runtime: containers.Runtime, name: str, helper: int, report: int, *, killed: bool) -> tuple[int, str]:
    """Clean up after the helper exited, then reap it: its exit code and report.
    Reaped last, so its number (the session's) cannot be reused meanwhile."""
    os.waitid(os.P_PID, helper, os.WEXITED | os.WNOWAIT)
    _kill_session(runtime, name, helper)
    if killed:
        _reap_adopted(helper)
    code = _exit_code(os.waitpid(helper, 0)[1])
    return code, _read_report(report)


def _kill_probe(helper: int) -> None:
    """SIGKILL the helper's process group: the helper, its exec child and the probe
    in the container die together. The helper too, in case it had not yet started its
    session (then it had started nothing)."""
    for kill in (os.killpg, os.kill):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            kill(helper, signal.SIGKILL)


def _kill_session(runtime: containers.Runtime, name: str, session: int) -> None:
    """Kill every process of ``session`` still in the container's cgroup until none is
    left: a probe's background processes, or one that changed its process group.
    Called while the helper (the session's leader) is still unreaped, so the
    session's number cannot meanwhile have become another process's."""
    try:
        group = runtime.cgroup(name)
    except containers.NoSuchContainer:
        return  # removed meanwhile, with every process in its cgroup
    for _ in range(500):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(session, signal.SIGKILL)  # members outside the cgroup: not yet joined
        try:
            members = [pid for pid in group.pids() if _stat(pid)[2] == session]
        except cgroups.CgroupError:
            return  # the container and its cgroup are gone, with every process in it
        if not members:
            return
        for pid in members:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.005)


def _reap_adopted(session: int) -> None:
    """Reap the probe's processes that came to us when the killed helper died before
    them: an agent is a child subreaper, so orphans become its children, and a
    zombie nobody waits for would hold a pid (and the container's pids limit)."""
    me = os.getpid()
    for _ in range(200):
        pids = (int(entry) for entry in os.listdir("/proc") if entry.isdigit())
        adopted = [pid for pid in pids if pid != session and _stat(pid)[::2] == (me, session)]
        if not adopted:
            return
        for pid in adopted:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
        time.sleep(0.005)


def _stat(pid: int) -> tuple[int, int, int]:
    """(ppid, pgid, session) of ``pid`` as the host sees them; zeros when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return (0, 0, 0)
    return (int(fields[1]), int(fields[2]), int(fields[3]))


# ---------------------------------------------------------------------------- state


class HealthState(NamedTuple):
    """A container's health: its status, how many probes in a row failed (and
    counted), the last results, when the status last changed (wall clock), and the
    start of the container it is about (``ContainerState.started_at``)."""

    status: HealthStatus = "starting"
    failing_streak: int = 0
    log: tuple[ProbeResult, ...] = ()
    last_change: float = 0.0
    container_started_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        out = self._asdict()
        out["log"] = [result._asdict() for result in self.log]
        return out

    @classmethod
    def from_json(cls, raw: object) -> HealthState:
        """The state ``to_json`` wrote; ValueError for anything else."""
        try:
            if not isinstance(raw, dict) or raw.get("status") not in ("starting", "healthy", "unhealthy"):
                raise ValueError(f"not a health state: {raw!r}")
            log = tuple(ProbeResult(**entry) for entry in raw.get("log", ()))
            return cls(**{**raw, "log": log})
        except TypeError as exc:
            raise ValueError(f"not a health state: {exc}") from None


def advance(state: HealthState, result: ProbeResult, *, retries: int, in_start_period: bool) -> HealthState:
    """The state after ``result``: Docker's rules, pure. ``in_start_period``: the
    probe started within ``start_period`` of the container's start."""
    log = (*state.log, result)[-MAX_LOG:]
    if result.passed:
        status: HealthStatus = "healthy"
        streak = 0
    elif state.status == "starting" and in_start_period:
        status, streak = state.status, state.failing_streak  # still starting up: not counted
    else:
        streak = state.failing_streak + 1
        status = "unhealthy" if streak >= retries else state.status
    changed = status != state.status
    return state._replace(
        status=status,
        failing_streak=streak,
        log=log,
        last_change=time.time() if changed else state.last_change,
    )


def health_path(root: str, name: str) -> str:
    return os.path.join(root, "containers", name, "health.json")


def read_health(root: str, name: str) -> HealthState | None:
    """``name``'s health as last recorded under the state root ``root``; None when it
    has no healthcheck (nothing recorded), and for a file that is not a health
    state: ``status`` and ``inspect`` then show no health rather than fail."""
    try:
        with open(health_path(root, name)) as handle:
            return HealthState.from_json(json.load(handle))
    except (OSError, ValueError):
        return None


def write_health(root: str, name: str, state: HealthState) -> bool:
    """Replace ``name``'s health.json atomically (a reader never sees half of one);
    False when the container's directory is gone: a health file must not bring a
    deleted container's directory back."""
    target = health_path(root, name)
    temporary = f"{target}.{os.getpid()}.{threading.get_ident()}.tmp"
    try:
        with open(temporary, "w") as handle:
            json.dump(state.to_json(), handle)
    except FileNotFoundError:
        return False
    try:
        os.replace(temporary, target)
    except FileNotFoundError:
        return False
    return True


class HealthChecker:
    """One container's healthcheck: ``step()`` probes when one is due and records the
    result. ``clock`` (seconds, monotonic) schedules probes; tests pass a fake one.
    The probe's own timeout is real time, whatever the clock.

    Made when the container runs (by the agent, again after the agent restarted):
    the start period counts from the container's recorded start, and a health state
    recorded for that same start is resumed, any other replaced by ``starting``."""

    def __init__(
        self,
        runtime: containers.Runtime,
        name: str,
        config: HealthConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.runtime = runtime
        self.name = name
        self.config = config
        self.clock = clock
        record = runtime.store.read(name)
        container_started = record.started_at if record is not None else None
        now = clock()
        #: the container's start on ``clock``: its age is what the wall clock says
        self.started = now - (max(0.0, time.time() - container_started) if container_started else 0.0)
        previous = read_health(runtime.root, name)
        same_start = previous is not None and previous.container_started_at == container_started
        if previous is not None and container_started is not None and same_start:
            self.state = previous
        else:
            self.state = HealthState("starting", last_change=time.time(), container_started_at=container_started)
            write_health(runtime.root, name, self.state)  # "starting" shows at once, as in Docker
        #: when the next probe is due, on ``clock``: one interval after the start
        self.next_due = self.started + self._interval(self.started)

    def due(self, now: float | None = None) -> bool:
        return (self.clock() if now is None else now) >= self.next_due

    def step(self) -> HealthState:
        """Probe if one is due, record the result, schedule the next; the state."""
        began = self.clock()
        if began < self.next_due:
            return self.state
        result = probe(self.runtime, self.name, self.config)
        in_start_period = began - self.started < self.config.start_period
        self.state = advance(self.state, result, retries=self.config.retries, in_start_period=in_start_period)
        write_health(self.runtime.root, self.name, self.state)
        ended = self.clock()
        self.next_due = ended + self._interval(ended)  # from the end, as Docker: probes never overlap
        return self.state

    def _interval(self, now: float) -> float:
        """``start_interval`` while starting within the start period, else ``interval``."""
        starting = self.state.status == "starting" and now - self.started < self.config.start_period
        return self.config.start_interval if starting else self.config.interval


# ---------------------------------------------------------------------------- monitor


class HealthMonitor:
    """Runs the healthchecks of many containers from one thread: it asks
    ``get_configs()`` (name → config, the running containers that have a check)
    every ``poll`` seconds, and hands each due checker to a pool of ``parallel``
    workers, so a slow probe delays no other container's. A container that leaves
    ``get_configs()`` loses its checker (its health.json stays, as Docker's last
    health stays in ``inspect``); a changed config gets a new checker."""

    def __init__(
        self,
        runtime: containers.Runtime,
        get_configs: Callable[[], Mapping[str, HealthConfig]],
        *,
        parallel: int = 4,
        poll: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if parallel < 1:
            raise ValueError("parallel must be at least 1")
        self.runtime = runtime
        self.get_configs = get_configs
        self.parallel = parallel
        self.poll = poll
        self.clock = clock
        self._checkers: dict[str, HealthChecker] = {}
        self._busy: set[str] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("the health monitor is already started")
        self._stopping.clear()
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=self.parallel, thread_name_prefix="health")
        self._thread = threading.Thread(target=self._loop, name="health-monitor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop scheduling, and wait for the probes under way (each ends by its timeout)."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def states(self) -> dict[str, HealthState]:
        with self._lock:
            return {name: checker.state for name, checker in self._checkers.items()}

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            self._wake.wait(self._tick())

    def _tick(self) -> float:
        """Start the due checks; how long to sleep before the next."""
        self._sync()
        now = self.clock()
        wake = now + self.poll
        with self._lock:
            checkers = [(n, c) for n, c in self._checkers.items() if n not in self._busy]
        for name, checker in checkers:
            if not checker.due(now):
                wake = min(wake, checker.next_due)
            elif self._pool is not None and not self._stopping.is_set():
                with self._lock:
                    self._busy.add(name)
                self._pool.submit(self._step, name, checker)
        return max(0.0, wake - now)

    def _sync(self) -> None:
        """Checkers for exactly the containers ``get_configs`` names, with their configs."""
        try:
            configs = dict(self.get_configs())
        except Exception:
            logger.exception("health monitor: reading the healthchecks failed; keeping the current ones")
            return
        with self._lock:
            current = dict(self._checkers)
        wanted: dict[str, HealthChecker] = {}
        for name, config in configs.items():
            checker = current.get(name)
            if checker is None or checker.config != config:
                try:
                    checker = HealthChecker(self.runtime, name, config, clock=self.clock)
                except Exception:
                    logger.exception("health monitor: cannot check %s", name)
                    continue
            wanted[name] = checker
        with self._lock:
            self._checkers = wanted

    def _step(self, name: str, checker: HealthChecker) -> None:
        try:
            checker.step()
        except Exception:
            logger.exception("health monitor: probing %s failed", name)
        finally:
            with self._lock:
                self._busy.discard(name)
            self._wake.set()
