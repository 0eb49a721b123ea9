"""Detached containers whose life does not depend on the engine that started them.

``start`` double-forks: the engine's child starts the container from a grandchild
and exits at once, so the grandchild (the monitor) is reparented away from the
engine and the engine can exit. The monitor then execs ``monitor.py`` and stays the
container's parent. Everything is in ``state.StateStore``; ``inspect`` checks the
kernel too, so a container whose monitor was killed is reported, not lost.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from reconciler.runtime import cgroups, netns, process, spawn
from reconciler.runtime.state import ContainerState, StateStore, new_id, process_start

CGROUP_PARENT = "reconcile"
#: Docker's rule for container names; they are also directory names here.
NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,253}$")
#: What may be (a prefix of) a container ID.
_HEX = re.compile(r"^[0-9a-f]{1,64}$")


class ContainerError(Exception):
    """A container operation failed; the subclasses say why, so the engine can answer
    404, 409 or 400 without reading messages."""


class NoSuchContainer(ContainerError):
    pass


class ContainerConflict(ContainerError):
    """It exists already, or is in the wrong state for this verb."""


class AmbiguousContainer(NoSuchContainer):
    """An ID prefix that more than one container's ID starts with (Docker answers 404 too)."""


class InvalidContainer(ContainerError):
    """A bad name or signal."""


class StartFailure(ContainerError):
    """The monitor could not start the container's process (its message says why)."""


def _config_from(spec: dict[str, Any]) -> spawn.Config:
    raw = dict(spec["config"])
    overlay = raw.pop("overlay", None)
    raw["groups"] = tuple(raw.get("groups", ()))
    raw["mounts"] = tuple(spawn.MountSpec(**m) for m in raw.get("mounts", ()))
    return spawn.Config(
        **raw,
        overlay=spawn.Overlay(tuple(overlay["layers"]), overlay["upper"], overlay["work"]) if overlay else None,
    )


class Runtime:
    def __init__(self, root: str, *, cgroup_parent: str = CGROUP_PARENT) -> None:
        self.root = root
        self.store = StateStore(root)
        self.cgroup_parent = cgroup_parent

    def reserve(self, name: str) -> str:
        """Claim ``name`` (its state directory, recorded as created with no spec yet)
        before anything is prepared for it, so a process killed while preparing
        leaves a container ``ps -a`` shows and ``rm`` removes, not stray files."""
        if not NAME.match(name):
            raise InvalidContainer(f"invalid container name {name!r}: use [a-zA-Z0-9][a-zA-Z0-9_.-]*")
        os.makedirs(self.store.directory, exist_ok=True)
        try:
            os.mkdir(self.store.path(name))
        except FileExistsError:
            raise ContainerConflict(f"container {name!r} already exists") from None
        ident = new_id()
        self.store.write(ContainerState(name=name, id=ident, cgroup=ident))
        return self.store.path(name)

    def resolve(self, ref: str) -> str:
        """The name of the container ``ref`` names, by Docker's rule: an exact name,
        else a full ID, else the one ID that starts with ``ref``. NoSuchContainer
        when none does, AmbiguousContainer when several IDs start with it. Only
        front ends' references go through here: the reconcile loop's names are names."""
        if ref and "/" not in ref and ref[0] != "." and self.store.read(ref) is not None:
            return ref
        if not ref or not _HEX.match(ref):
            raise NoSuchContainer(f"no such container: {ref}")
        matches = []
        for state in self.store.read_all():
            if state.id == ref:
                return state.name
            if state.id.startswith(ref):
                matches.append(state.name)
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise AmbiguousContainer(f"multiple containers match prefix {ref!r}: {', '.join(matches)}")
        raise NoSuchContainer(f"no such container: {ref}")

    def create(
        self,
        name: str,
        config: spawn.Config,
        limits: cgroups.Limits | None = None,
        *,
        image: dict[str, str] | None = None,
        stop_signal: str | None = None,
        record: dict[str, Any] | None = None,
        netns_handle: bool = True,
    ) -> ContainerState:
        """Record a container to start later; ``name`` may have been ``reserve``d.
        ``image`` is what it was made from (``name``, ``id``, ``manifest``), kept so
        an image in use is never pruned and ``inspect`` can say which it is.
        ``stop_signal`` (``SIGQUIT``, ``15``) is what ``stop`` sends first: the
        spec's, else the image's STOPSIGNAL, else SIGTERM. ``record`` is added to the
        spec as it is (the engine's ``owner``, ``labels``, ...), in the same write.
        ``netns_handle``: make the network namespace now, held at ``NAME/netns``, for
        the network layer to wire before the process starts; without it (a container
        on no network, loopback only, as ``--network none``) each start makes its own
        namespace, which saves a helper process per container (about 9 ms)."""
        stop = signal_number(stop_signal or "SIGTERM")
        state = self.store.read(name)
        if state is None:
            self.reserve(name)
            state = self._require(name)
        elif state.spec:
            raise ContainerConflict(f"container {name!r} already exists")
        if netns_handle and "net" not in config.host_namespaces and config.netns is None:
            # made before the process, so the network layer can wire it first
            handle = self.store.path(name, "netns")
            netns.remove(handle)  # a create killed half-way may have left one
            netns.create(handle)
            config = config._replace(netns=handle)
        state.spec = {
            "config": spawn.to_json(config),
            "limits": (limits or cgroups.Limits())._asdict(),
            "image": image,
            "stop_signal": stop,
            **(record or {}),
        }
        self.store.write(state)
        return state

    def _group(self, state: ContainerState) -> cgroups.Cgroup:
        """The container's cgroup: named by its ID (as Docker's ``docker/<id>``), so
        engines with different roots and the same parent never share one."""
        return cgroups.new_cgroup(state.cgroup, parent=self.cgroup_parent)

    def cgroup(self, name: str) -> cgroups.Cgroup:
        """``name``'s cgroup (whether or not it exists now)."""
        return self._group(self._require(name))

    def start(self, name: str) -> ContainerState:
        state = self._startable(name)
        ready_r, ready_w = os.pipe()
        first = os.fork()
        if first == 0:  # pragma: no cover - child processes; their effects are tested
            os.close(ready_r)
            os.setsid()
            if os.fork() != 0:
                os._exit(0)
            self._monitor(state, ready_w)
        os.close(ready_w)
        os.waitpid(first, 0)
        # One message, not "until EOF": the container's outer process is forked while
        # the monitor holds this pipe, and keeps its copy for the container's life.
        try:
            message = os.read(ready_r, 65536).decode(errors="replace")
        finally:
            os.close(ready_r)
        if message != "ok":
            raise StartFailure(f"container {name!r} did not start: {message or 'the monitor died'}")
        return self._require(name)

    def restart(self, name: str) -> ContainerState:
        """Start an exited container again, as Docker's restart: same filesystem (its
        upper dir), same network namespace, a new process. The count goes up unless
        the last run lasted ten seconds or more (then a crash loop is over)."""
        state = self.inspect(name)
        if state.status in ("running", "paused"):
            raise ContainerConflict(f"container {name!r} is {state.status}: stop it first")
        ran = (state.finished_at or 0) - (state.started_at or 0)
        state.restart_count = 0 if ran >= 10 else state.restart_count + 1
        state.status, state.pid, state.pid_start, state.monitor_pid = "created", 0, 0, 0
        state.exit_code, state.oom_killed, state.error, state.stopped_by_user = None, False, None, False
        state.started_at = state.finished_at = None
        self.store.write(state)
        return self.start(name)

    def _startable(self, name: str) -> ContainerState:
        state = self._require(name)
        if state.status != "created":
            raise ContainerConflict(f"container {name!r} is {state.status}, not created")
        if not state.spec:
            raise ContainerConflict(f"container {name!r} was never fully created: remove it and create it again")
        # an earlier start killed half-way may have left a cgroup with processes in it
        self._reap(state)
        if state.cgroup != state.id:  # started before IDs existed: from now on in its ID's
            state.cgroup = state.id
            self.store.write(state)
        return state

    def run(
        self,
        name: str,
        *,
        stdin: int = 0,
        stdout: int = 1,
        stderr: int = 2,
        remove: bool = False,
        exited: Callable[[int], None] | None = None,
    ) -> int:
        """Start ``name`` with this process as its parent, wait, record the exit: the
        path of ``run`` without ``-d``. No monitor is needed while we wait; if this
        process is killed, the container runs on and ``inspect`` finds it.
        ``exited`` hears the exit code once it is final (recorded, or with ``remove``
        the container out of sight), before the removal's file deletion."""
        state = self._startable(name)
        group = self._group(state)
        try:
            group.create()
            group.set(cgroups.Limits(**state.spec["limits"]))
            started = spawn.start(_config_from(state.spec), cgroup=group, stdin=stdin, stdout=stdout, stderr=stderr)
        except BaseException as exc:
            self._record_failure(state, exc, remove=remove)
            raise
        state.status, state.pid, state.pid_start = "running", started.pid, process_start(started.pid)
        state.monitor_pid, state.started_at = os.getpid(), time.time()
        self.store.write(state)

        def forward(signum: int, _frame: object) -> None:  # as docker run's --sig-proxy
            with contextlib.suppress(ProcessLookupError):
                os.kill(started.pid, signum)

        # Only the main thread may set handlers: a caller on another thread (an agent
        # serving an attached run) stops the container with stop or kill instead.
        forwarded = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP) if _in_main_thread() else ()
        previous = {sig: signal.signal(sig, forward) for sig in forwarded}
        try:
            code = spawn.wait(started)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        state.oom_killed = self._reap(state)
        state.status, state.exit_code, state.finished_at = "exited", code, time.time()
        if remove:
            netns.remove(self.store.path(name, "netns"))
            retired = self.store.retire(name)
            if exited is not None:
                exited(code)
            self.store.delete_retired(retired)
        else:
            self.store.write(state)
            if exited is not None:
                exited(code)
        return code

    def _record_failure(self, state: ContainerState, exc: BaseException, *, remove: bool = False) -> None:
        self._reap(state)
        if remove:
            self._forget(state.name)
            return
        state.status, state.error, state.exit_code = "exited", str(exc), getattr(exc, "exit_code", 126)
        state.finished_at = time.time()
        self.store.write(state)

    def _reap(self, state: ContainerState) -> bool:
        """Kill whatever is left in the container's cgroup and remove it; whether the
        kernel OOM-killed something in it. Idempotent: no cgroup, nothing to do."""
        name = state.name
        group = self._group(state)
        if not group.exists():
            return False
        with contextlib.suppress(cgroups.CgroupError):
            group.thaw()  # a frozen process cannot die
        oom = False
        for _ in range(500):
            with contextlib.suppress(cgroups.CgroupError):
                oom = oom or group.stats().oom_kills > 0
            pids: list[int] = []
            with contextlib.suppress(cgroups.CgroupError):  # a destroy half done may have removed one hierarchy
                pids = group.pids()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            try:
                group.destroy()
                return oom
            except cgroups.CgroupError:
                time.sleep(0.01)
        raise ContainerError(f"container {name!r}: its cgroup would not empty")

    def _monitor(self, state: ContainerState, ready: int) -> None:  # pragma: no cover - runs in the monitor
        """In the monitor: cgroup, pipes, start, record, exec the small monitor."""
        # A daemon keeps none of the engine's stdio: a caller capturing the engine's
        # output would otherwise wait for the container to exit. Errors go through `ready`.
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.close(null)
        try:
            group = self._group(state)
            group.create()
            group.set(cgroups.Limits(**state.spec["limits"]))
            config = _config_from(state.spec)
            if config.tty:  # one stream, a terminal: the monitor logs it as stdout
                out_r, slave = os.openpty()
                err_r = -1
                started = spawn.start(config, cgroup=group, stdin=slave, stdout=slave, stderr=slave, dedicated=True)
                os.close(slave)
            else:
                out_r, out_w = os.pipe()
                err_r, err_w = os.pipe()
                devnull = os.open(os.devnull, os.O_RDONLY)
                started = spawn.start(config, cgroup=group, stdin=devnull, stdout=out_w, stderr=err_w, dedicated=True)
                for fd in (out_w, err_w, devnull):
                    os.close(fd)
            state.status = "running"
            state.pid = started.pid
            state.pid_start = process_start(started.pid)
            state.monitor_pid = os.getpid()
            state.started_at = time.time()
            self.store.write(state)
            # the log exists once start returns: ``logs -f`` right after ``run -d``
            # follows it instead of finding nothing (monitor.py appends to it)
            open(self.store.path(state.name, "container.log"), "ab").close()
            for fd in (out_r, err_r):
                if fd >= 0:
                    os.set_inheritable(fd, True)
            os.write(ready, b"ok")
            os.close(ready)
            script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "monitor.py")
            args = [self.root, state.name, str(started.outer_pid), str(out_r), str(err_r), self.cgroup_parent]
            args.append(state.cgroup)
            os.execv(sys.executable, [sys.executable, "-S", "-I", script, *args])
        except BaseException as exc:
            # record first, then tell the engine: it reads the state as soon as it hears
            with contextlib.suppress(Exception):
                self._record_failure(state, exc)
            with contextlib.suppress(OSError):
                os.write(ready, str(exc).encode())
            os._exit(1)

    def inspect(self, name: str) -> ContainerState:
        """The recorded state, corrected by what the kernel says now."""
        return self._checked(self._require(name))

    def _checked(self, state: ContainerState) -> ContainerState:
        """``state`` corrected by what the kernel says now: running or paused with
        both its process and its monitor gone, it is recorded (and returned) as exited.
        Only a running or paused state asks the kernel, the monitor only when the
        container's process is gone."""
        if (
            state.status in ("running", "paused")
            and process_start(state.pid) != state.pid_start
            and not process_start(state.monitor_pid)
        ):
            # both gone and nobody recorded why: report it rather than pretend it runs
            state.status, state.error = "exited", "the container and its monitor are gone; exit code unknown"
            state.oom_killed = self._reap(state)
            state.finished_at = state.finished_at or time.time()
            self.store.write(state, create=False)  # a container removed meanwhile stays removed
        return state

    def containers(self) -> list[ContainerState]:
        """Every container, by name, each as ``inspect`` gives it (new objects: the
        caller's to change). Unchanged states come from the store's cache."""
        return [self._checked(state) for state in self.store.read_all()]

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        state = self.inspect(name)
        if state.status not in ("running", "paused"):
            raise ContainerConflict(f"container {name!r} is not running")
        with contextlib.suppress(ProcessLookupError):
            os.kill(state.pid, sig)

    def stop(self, name: str, *, grace: float = 10.0, sig: int | None = None) -> ContainerState:
        """The stop signal (``sig``, else the one recorded at create), ``grace``
        seconds, then SIGKILL; returns once it exited."""
        state = self.inspect(name)
        sig = sig or int(state.spec.get("stop_signal") or signal.SIGTERM)
        if state.status in ("running", "paused"):
            state.stopped_by_user = True  # restart policies leave it stopped
            self.store.write(state)
        if state.status == "paused":
            self.unpause(name)
        if state.status in ("running", "paused"):
            # it may exit on its own at any moment: "not running" is then success
            with contextlib.suppress(ContainerError):
                self.kill(name, sig)
            if not self._wait_exited(name, grace):
                with contextlib.suppress(ContainerError):
                    self.kill(name, signal.SIGKILL)
                self._wait_exited(name, 30.0)
        return self.inspect(name)

    def _wait_exited(self, name: str, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.inspect(name).status == "exited":
                return True
            time.sleep(0.02)
        return False

    def exec(
        self,
        name: str,
        argv: list[str],
        *,
        stdout: int = 1,
        stderr: int = 2,
        stdin: int = 0,
        tty: bool = False,
        env: Sequence[str] = (),
        cwd: str | None = None,
        user: str | None = None,
    ) -> int:
        """Run ``argv`` in the running container ``name``; its exit code. ``env``
        (``KEY=VALUE``) is added to the container's, ``cwd`` and ``user`` replace its."""
        state = self.inspect(name)
        if state.status != "running":
            raise ContainerConflict(f"container {name!r} is {state.status}, not running")
        config = exec_config(state, argv, tty=tty)
        if env:
            merged = dict(item.partition("=")[::2] for item in (*config.env, *env))
            config = config._replace(env=[f"{key}={value}" for key, value in merged.items()])
        if cwd:
            config = config._replace(cwd=cwd)
        if user:
            who = process.resolve_user(f"/proc/{state.pid}/root", user)
            config = config._replace(uid=who.uid, gid=who.gid, groups=who.groups)
        return spawn.exec_in(state.pid, config, cgroup=self._group(state), stdout=stdout, stderr=stderr, stdin=stdin)

    def pause(self, name: str) -> None:
        state = self._require(name)
        self._group(state).freeze()
        state.status = "paused"
        self.store.write(state)

    def unpause(self, name: str) -> None:
        state = self._require(name)
        self._group(state).thaw()
        state.status = "running"
        self.store.write(state)

    def delete(self, name: str) -> None:
        state = self.inspect(name)
        if state.status in ("running", "paused"):
            raise ContainerConflict(f"container {name!r} is {state.status}: stop it first")
        self._reap(state)  # a start killed half-way may have left processes behind
        self._forget(name)

    def _forget(self, name: str) -> None:
        """Remove everything of a container that is no longer running: its network
        namespace handle (the one mount on the host) first, then its directory."""
        netns.remove(self.store.path(name, "netns"))
        self.store.remove(name)

    def _require(self, name: str) -> ContainerState:
        state = self.store.read(name)
        if state is None:
            raise NoSuchContainer(f"no such container: {name}")
        return state


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def signal_number(text: str) -> int:
    """``KILL``, ``SIGTERM``, ``sigusr1`` or ``9``."""
    if text.isdigit():
        return int(text)
    name = "SIG" + text.upper().removeprefix("SIG")
    try:
        return int(signal.Signals[name])
    except KeyError:
        raise InvalidContainer(f"unknown signal {text!r}") from None


def exec_config(state: ContainerState, argv: list[str], *, tty: bool = False) -> spawn.Config:
    """The container's own process settings, running ``argv`` instead (never as an init)."""
    return _config_from(state.spec)._replace(argv=argv, init=False, tty=tty)
