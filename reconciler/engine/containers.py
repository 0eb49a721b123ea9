"""Containers: the engine's use cases of containers (``engine.models.containers``),
over the runtime, image store, volumes and networks the wiring shares.

Making one (``create``, ``run``, and the reconcile loop's ``run_from_spec``) goes
through ``container_setup``: one path from flags or a manifest to a container.
Driver errors are translated there (``container_setup.translated``): an unknown
container or image is NotFound, one in the wrong state a Conflict, a bad flag an
InvalidRequest, a process that could not start StartFailed with Docker's code.
Mutations hold the container's lock; an attached ``run`` holds it while making and
while cleaning up, not while the process runs (``stop`` must get through).

Front ends name a container by its name, its ID or a unique ID prefix: each
operation ``resolve``s the reference to the name once, at its entry, and only then
takes the lock (locks are keyed by name). The reconcile loop's methods take names
as they are: a manifest's name is never read as an ID prefix.

Standard library only at import time: this is ``reconcile run``'s path.
"""

from __future__ import annotations

import builtins
import contextlib
import os
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from reconciler.engine import container_setup as setup
from reconciler.engine import errors
from reconciler.engine.container_listing import Listing
from reconciler.engine.container_view import inspect_document
from reconciler.engine.models.containers import (
    ContainerRef,
    ContainerStats,
    ContainerSummary,
    ExecRequest,
    LogEntry,
    RunRequest,
    Stdio,
    WaitResult,
)
from reconciler.engine.models.keyed import KeyedList
from reconciler.runtime import cgroups
from reconciler.runtime.containers import NoSuchContainer, signal_number

if TYPE_CHECKING:
    from reconciler.engine.core import Engine
    from reconciler.model.container import ContainerSpec
    from reconciler.runtime.containers import Runtime
    from reconciler.runtime.logread import Entry

#: How often ``wait`` and ``logs -f`` look again.
POLL_SECONDS = 0.05
#: ``wait``'s answer for a container whose exit nobody recorded (its monitor died too).
EXIT_UNKNOWN = 255


class Containers:
    """``models.ContainersAPI`` in-process, plus what the reconcile loop needs
    (``run_from_spec``, ``update_from_spec``, ``discard``)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._wiring = engine.wiring
        self._listing = Listing()

    def _runtime(self) -> Runtime:
        return self._wiring.runtime()

    def _hold(self, name: str) -> contextlib.AbstractContextManager[None]:
        return self._engine.locks.hold("container", name)

    def resolve(self, name_or_id: str) -> str:
        """The name of the container ``name_or_id`` names: an exact name, else a full
        ID, else a unique ID prefix. NotFound otherwise (an ambiguous prefix too, as
        Docker answers, with a message naming it)."""
        with setup.translated():
            return self._runtime().resolve(name_or_id)

    # --- making and starting -------------------------------------------------

    def create(self, request: RunRequest) -> ContainerRef:
        """A container made from ``request`` and not started (status created)."""
        made = self._create(request)
        return {"name": made.name, "id": made.id}

    def _create(self, request: RunRequest) -> setup.Made:
        blueprint = setup.from_request(request)
        name = request.get("name") or f"run-{os.urandom(6).hex()}"
        with self._hold(name):
            return setup.make(self._wiring, name, blueprint)

    def start(self, name: str) -> ContainerRef:
        """Start a created container; an exited one starts again as it was (same
        filesystem and network), as ``docker start`` does. A running one is left as it is."""
        name = self.resolve(name)
        runtime = self._runtime()
        with self._hold(name), setup.translated():
            state = runtime.inspect(name)
            if state.status == "paused":
                raise errors.Conflict(f"container {name!r} is paused: unpause it instead")
            if state.status == "running":
                return {"name": name}
            state = runtime.restart(name) if state.status == "exited" else runtime.start(name)
            setup.filled(self._wiring, state.spec)
        return {"name": name}

    def run(self, request: RunRequest, stdio: Stdio | None = None, *, detach: bool = False) -> WaitResult:
        """``create`` then ``start``. Detached it returns at once (exit code 0);
        attached the caller's thread is the container's parent until it exits, its
        stdio are ``stdio``, and with ``remove`` (``--rm``) the container and its
        anonymous volumes are gone afterwards. Any thread may call it: signals are
        forwarded to the container only when it is the main one."""
        remove = bool(request.get("remove"))
        if detach and remove:
            raise errors.InvalidRequest(
                "--rm and -d together are not supported yet: remove the container with rm", exit_code=125
            )
        made = self._create(request)
        name = made.name
        if detach:
            with self._hold(name), setup.translated(exit_code=125):
                self._runtime().start(name)
                setup.filled(self._wiring, made.spec)
            return {"name": name, "exit_code": 0}
        return {"name": name, "exit_code": self._attached(name, made.spec, stdio or Stdio(), remove=remove)}

    def _attached(self, name: str, spec: dict[str, Any], stdio: Stdio, *, remove: bool) -> int:
        runtime = self._runtime()
        released = False

        def release() -> None:
            with self._hold(name):
                if runtime.store.read(name) is None:  # not if someone else made it meanwhile
                    setup.release(self._wiring, name, spec, anonymous_volumes=True)

        def exited(code: int) -> None:
            # with --rm the container is out of sight now: what it held outside its
            # directory goes before the caller hears the exit, its files after
            nonlocal released
            if remove:
                released = True
                release()
            if stdio.exited is not None:
                stdio.exited(code)

        try:
            with setup.translated(exit_code=125):
                setup.filled(self._wiring, spec)  # the copy happens before the process runs
                return runtime.run(
                    name, stdin=stdio.stdin, stdout=stdio.stdout, stderr=stdio.stderr, remove=remove, exited=exited
                )
        finally:
            if remove and not released:  # it never ran, or failed before its exit was recorded
                with self._hold(name), contextlib.suppress(Exception):  # gone already unless it never started
                    runtime.delete(name)
                release()

    # --- the reconcile loop's ----------------------------------------------------

    def run_from_spec(
        self,
        name: str,
        spec: ContainerSpec,
        *,
        image: str,
        aliases: tuple[str, ...] = (),
        publish: bool = True,
        owner: str | None = None,
        service: dict[str, str] | None = None,
    ) -> str:
        """Make and start (detached) a manifest's container; the manifest digest of
        the image it runs. ``image`` is the reference to run (a stack's Image
        resolves to a local one); ``owner`` (the stack) and ``service`` (a replica's
        service and template) are recorded in its state from the start. On any
        failure nothing of it is left."""
        blueprint = setup.from_spec(spec, image=image, aliases=aliases, publish=publish)
        record: dict[str, Any] = {}
        if owner is not None:
            record["owner"] = owner
        if service is not None:
            record["service"] = service
        with self._hold(name):
            made = setup.make(self._wiring, name, blueprint, record=record)
            try:
                with setup.translated(exit_code=125):
                    state = self._runtime().start(name)
                setup.filled(self._wiring, state.spec)
            except BaseException:
                setup.discard(self._wiring, name, networks=bool(blueprint.networks))
                raise
        return made.digest

    def update_from_spec(self, name: str, spec: ContainerSpec) -> None:
        """Apply a manifest's new resource limits to the running container, in place."""
        with self._hold(name), setup.translated():
            self._runtime().cgroup(name).set(setup.limits_of(spec))

    def discard(self, name: str, *, grace: float = 10.0) -> None:
        """Stop (the stop signal, ``grace`` seconds, then SIGKILL) and remove whatever
        there is of ``name`` and detach it from every network; nothing there is no
        error. The reconcile loop's delete, which must also clean up after a pass
        killed half-way."""
        runtime = self._runtime()
        with self._hold(name):
            with setup.translated(), contextlib.suppress(NoSuchContainer):
                runtime.stop(name, grace=grace)
                runtime.delete(name)
            setup.detach(self._wiring, name)

    # --- the lifecycle -------------------------------------------------------------

    def stop(self, name: str, *, grace: float = 10.0) -> ContainerRef:
        """The stop signal, ``grace`` seconds, then SIGKILL; returns once it exited.
        An exited container is left as it is."""
        name = self.resolve(name)
        runtime = self._runtime()
        with self._hold(name), setup.translated():
            runtime.inspect(name)
            with contextlib.suppress(NoSuchContainer):  # an attached run --rm forgot it as it exited
                runtime.stop(name, grace=grace)
        return {"name": name}

    def kill(self, name: str, *, signal: str = "KILL") -> ContainerRef:
        with setup.translated():
            number = signal_number(signal)
        name = self.resolve(name)
        with self._hold(name), setup.translated():
            self._runtime().kill(name, number)
        return {"name": name}

    def pause(self, name: str) -> ContainerRef:
        name = self.resolve(name)
        runtime = self._runtime()
        with self._hold(name), setup.translated():
            status = runtime.inspect(name).status
            if status != "running":
                raise errors.Conflict(f"container {name!r} is {status}, not running")
            runtime.pause(name)
        return {"name": name}

    def unpause(self, name: str) -> ContainerRef:
        name = self.resolve(name)
        runtime = self._runtime()
        with self._hold(name), setup.translated():
            status = runtime.inspect(name).status
            if status != "paused":
                raise errors.Conflict(f"container {name!r} is {status}, not paused")
            runtime.unpause(name)
        return {"name": name}

    def remove(self, name: str, *, force: bool = False) -> ContainerRef:
        """Remove an exited or created container (with ``force`` a running one is
        killed first, as ``rm -f``) and detach it from its networks. Its named and
        anonymous volumes stay."""
        name = self.resolve(name)
        runtime = self._runtime()
        with self._hold(name), setup.translated():
            state = runtime.inspect(name)
            if force and state.status in ("running", "paused"):
                runtime.stop(name, grace=0)
            runtime.delete(name)
            setup.release(self._wiring, name, state.spec)
        return {"name": name}

    def wait(self, name: str) -> WaitResult:
        """Block until it has exited; its exit code (255 when nobody recorded it)."""
        name = self.resolve(name)
        runtime = self._runtime()
        while True:
            with setup.translated():
                state = runtime.inspect(name)
            if state.status == "exited":
                return {"name": name, "exit_code": EXIT_UNKNOWN if state.exit_code is None else state.exit_code}
            time.sleep(POLL_SECONDS)

    def exec(self, name: str, request: ExecRequest, stdio: Stdio | None = None) -> WaitResult:
        """Run a command in the running container; its exit code. ``stdio`` are the
        caller's choice (``interactive`` is the caller's to honour: an unread stdin)."""
        command = list(request.get("command") or [])
        if not command:
            raise errors.InvalidRequest("exec needs a command", exit_code=125)
        stdio = stdio or Stdio()
        with setup.translated(exit_code=125):
            name = self._runtime().resolve(name)
            code = self._runtime().exec(
                name,
                command,
                stdin=stdio.stdin,
                stdout=stdio.stdout,
                stderr=stdio.stderr,
                tty=bool(request.get("tty")),
                env=request.get("env") or (),
                cwd=request.get("workdir"),
                user=request.get("user"),
            )
        return {"name": name, "exit_code": code}

    # --- looking ---------------------------------------------------------------------

    def inspect(self, name: str) -> dict[str, Any]:
        """The container in the shape of ``docker inspect`` (the fields we have)."""
        with setup.translated():
            runtime = self._runtime()
            return inspect_document(runtime.inspect(runtime.resolve(name)))

    def list(self, *, all: bool = False) -> builtins.list[ContainerSummary]:
        """Running and paused containers; with ``all`` created and exited ones too."""
        with setup.translated():
            rows = self._listing.rows(self._runtime())
        if all:
            return rows
        key = None if rows.cache_key is None else (rows.cache_key, "running")
        return KeyedList((row for row in rows if row["status"] in ("running", "paused")), cache_key=key)

    def logs(
        self, name: str, *, follow: bool = False, tail: int | None = None, since_ns: int | None = None
    ) -> Iterator[LogEntry]:
        """What a detached container wrote, oldest first (the last ``tail``, those at
        or after ``since_ns``); with ``follow``, then what it writes until it exits.
        A negative ``tail`` is all of it, as Docker's. An unknown name is NotFound at
        once, before the first entry is asked for."""
        if tail is not None and tail < 0:
            tail = None
        runtime = self._runtime()
        with setup.translated():
            name = runtime.resolve(name)
            runtime.inspect(name)
        path = runtime.store.path(name, "container.log")
        if not os.path.exists(path):
            return iter(())
        from reconciler.runtime import logread

        if not follow:
            return (_entry(e) for e in logread.read(path, tail=tail, since_ns=since_ns))

        def exited() -> bool:
            try:
                return runtime.inspect(name).status == "exited"
            except NoSuchContainer:
                return True

        entries = logread.follow(path, tail=tail, since_ns=since_ns, stop=exited, poll_seconds=POLL_SECONDS * 2)
        return (_entry(e) for e in entries)

    def stats(self, names: builtins.list[str] | None = None) -> builtins.list[ContainerStats]:
        """One snapshot of the usage of running (and paused) containers, those of
        ``names`` (names, IDs or unique ID prefixes) only when given; unknown ones are left out."""
        runtime = self._runtime()
        rows: builtins.list[ContainerStats] = []
        with setup.translated():
            if names:
                names = [_resolved(runtime, name) for name in names]
            states = runtime.containers()
        for state in states:
            if state.status not in ("running", "paused") or (names and state.name not in names):
                continue
            try:
                usage = cgroups.new_cgroup(state.cgroup, parent=runtime.cgroup_parent).stats()
            except cgroups.CgroupError:
                continue  # it exited meanwhile
            rows.append(
                {
                    "name": state.name,
                    "memory_usage": usage.memory_usage,
                    "memory_peak": usage.memory_peak,
                    "memory_limit": state.spec.get("limits", {}).get("memory"),
                    "cpu_seconds": usage.cpu_usage_ns / 1e9,
                    "pids": usage.pids,
                }
            )
        return rows


def _resolved(runtime: Runtime, ref: str) -> str:
    """``ref``'s name, or ``ref`` itself when it names no container (one to leave out)."""
    try:
        return runtime.resolve(ref)
    except NoSuchContainer:
        return ref


def _entry(entry: Entry) -> LogEntry:
    return {"stream": entry.stream, "time_ns": entry.time_ns, "text": entry.text}
