"""``/containers/...``: create, start, wait, attach, logs, stop, kill, rm, ps,
inspect, pause, restart, top, stats, resize, prune, over the engine's containers.

Containers made here are ordinary engine containers (no stack owner); what the engine
has no field for (``AutoRemove``, the restart policy, the health check as given) is
kept beside them (``store.SIDECAR``). Every container starts detached (its monitor
writes its log); ``attach`` follows that log, so ``docker logs`` shows the output of
an attached ``docker run`` too. ``AutoRemove`` is carried out by the agent: once the
container has exited and its attached clients have their output, it is removed and
a ``condition=removed`` wait answers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
import time
from typing import Any

from aiohttp import web

from reconciler.dockerapi import follow, listing, pump, store, streams, translate, views
from reconciler.dockerapi.context import DockerContext, Routes
from reconciler.dockerapi.errors import DockerError, boolean, filters, integer, json_body, json_response
from reconciler.dockerapi.exits import exits
from reconciler.engine import errors

#: How often a ``wait`` looks at the container again.
WAIT_POLL = 0.05
#: How long ``kill`` with SIGKILL waits for the exit to be recorded.
KILL_WAIT = 5.0
#: How long an AutoRemove waits for attached clients to get the last output.
ATTACH_DRAIN = 5.0


class _Shared:
    """What the handlers share across requests: exit codes of auto-removed
    containers (for ``condition=removed`` waits) and attachments in flight."""

    def __init__(self) -> None:
        self.exits: dict[str, int] = {}
        self.attached: dict[str, int] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        #: attachments with stdin waiting for their container's start, by name
        self.interactive: dict[str, _Interactive] = {}


class _Interactive:
    """An attach with stdin (``docker run -i``) made before the start: ``start`` runs
    the process with these pipes, the agent its parent (a monitor's stdin is
    /dev/null), and the attach pumps them, writing the container's log as it goes."""

    def __init__(self, pipes: pump.Pipes) -> None:
        self.pipes = pipes
        self.job: asyncio.Future[int] | None = None
        self.started = asyncio.Event()
        self.log: Any = None


def shared(context: DockerContext) -> _Shared:
    value = context.state.get("containers")
    if value is None:
        value = context.state["containers"] = _Shared()
    assert isinstance(value, _Shared)
    return value


def _ref(request: web.Request) -> str:
    return request.match_info["id"]


async def _find(context: DockerContext, ref: str) -> Any:
    return await context.call(store.find, context.engine, ref)


def _familiar(image: str) -> str:
    last = image.rsplit("/", 1)[-1]
    return image if ":" in last or "@" in image else f"{image}:latest"


# --- create, start, wait ---------------------------------------------------------


async def create(request: web.Request, context: DockerContext) -> web.StreamResponse:
    body = await json_body(request, required=True)
    name = (request.query.get("name") or "").lstrip("/") or None
    run_request, extra = translate.run_request(body, name)
    try:
        made = await context.call(context.engine.containers.create, run_request)
    except errors.NotFound as exc:
        if "image" in exc.message.lower():
            raise DockerError(404, f"No such image: {_familiar(run_request['image'])}") from None
        raise
    except errors.Conflict as exc:
        if name and "already exists" in exc.message:
            try:
                holder = store.docker_id(await _find(context, name))
            except DockerError:
                holder = name
            raise DockerError(
                409,
                f'Conflict. The container name "/{name}" is already in use by container "{holder}". You have to '
                "remove (or rename) that container to be able to reuse that name.",
            ) from None
        raise
    extra["Config"]["User"] = run_request.get("user") or ""
    await context.call(store.write_sidecar, context.engine, made["name"], extra)
    state = await _find(context, made["name"])
    return json_response({"Id": store.remember(context.engine, state), "Warnings": translate.warnings(body)}, 201)


async def start(request: web.Request, context: DockerContext) -> web.StreamResponse:
    state = await _find(context, _ref(request))
    if state.status in ("running", "paused"):
        return web.Response(status=304)
    slot = shared(context).interactive.get(state.name)
    extra = await context.call(store.sidecar, context.engine, state.name)
    auto_remove = bool((extra.get("HostConfig") or {}).get("AutoRemove"))
    try:
        if slot is not None and slot.job is None and state.status == "created":
            await _start_interactive(context, state.name, slot)
        else:
            await context.call(context.engine.containers.start, state.name)
    except errors.EngineError:
        if auto_remove:  # as moby: a --rm container that could not start is gone (the CLI waits for that)
            with contextlib.suppress(errors.EngineError):
                await context.call(context.engine.containers.remove, state.name, force=True)
        raise
    finally:
        exits(context).notify(state.name)
    if auto_remove:
        _watch_auto_remove(context, state.name)
    return web.Response(status=204)


async def _start_interactive(context: DockerContext, name: str, slot: _Interactive) -> None:
    """Start ``name`` with the attachment's pipes; returns once it runs (or failed to)."""
    from reconciler.runtime.logs import LogWriter

    runtime = store.runtime(context.engine)
    slot.log = LogWriter(runtime.store.path(name, "container.log"))
    pipes = slot.pipes

    def run() -> int:
        from reconciler.engine import container_setup as setup

        try:
            with setup.translated(exit_code=125):
                setup.filled(context.engine.wiring, runtime.inspect(name).spec)
                return runtime.run(name, stdin=pipes.process.stdin, stdout=pipes.process.stdout,
                                   stderr=pipes.process.stderr)  # fmt: skip
        finally:
            pipes.close_process_ends()

    slot.job = asyncio.get_running_loop().run_in_executor(context.executor, run)
    slot.started.set()
    while not slot.job.done():
        state = await context.call(runtime.inspect, name)
        if state.status != "created":
            return
        await asyncio.sleep(WAIT_POLL / 5)
    slot.job.result()  # raises why it did not start


def _watch_auto_remove(context: DockerContext, name: str) -> None:
    common = shared(context)

    async def remove_when_exited() -> None:
        heard = exits(context)
        while True:
            try:
                state = await context.call(store.runtime(context.engine).inspect, name)
            except Exception:
                return  # removed by someone else
            if state.status == "exited":
                break
            await heard.pause(name, state)
        common.exits[name] = state.exit_code or 0
        deadline = time.monotonic() + ATTACH_DRAIN
        while common.attached.get(name) and time.monotonic() < deadline:
            await heard.changed(name)  # an attached client getting the last of the output
        with contextlib.suppress(errors.EngineError):
            await context.call(context.engine.containers.remove, name, force=True)
            await context.call(_remove_anonymous_volumes, context, state)
        heard.notify(name)

    task = asyncio.ensure_future(remove_when_exited())
    common.tasks.add(task)
    task.add_done_callback(common.tasks.discard)


async def wait(request: web.Request, context: DockerContext) -> web.StreamResponse:
    condition = request.query.get("condition") or "not-running"
    if condition not in ("not-running", "next-exit", "removed"):
        raise DockerError(400, f"invalid condition: {condition!r}")
    state = await _find(context, _ref(request))
    name = state.name
    common = shared(context)
    response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    await response.prepare(request)  # the headers go now: the CLI starts the container only after them
    first_status, first_started = state.status, state.started_at
    code = state.exit_code or 0
    while True:
        try:
            state = await context.call(store.runtime(context.engine).inspect, name)
        except Exception:
            code = common.exits.get(name, code)
            break  # removed
        if state.status == "exited":
            code = state.exit_code or 0
            if condition == "not-running":
                break
            if condition == "next-exit" and (first_status != "exited" or state.started_at != first_started):
                break
        elif condition == "not-running" and state.status == "created":
            break
        transport = request.transport
        if transport is None or transport.is_closing():
            return response  # the client went away
        await exits(context).pause(name, state)
    with contextlib.suppress(ConnectionResetError, BrokenPipeError):
        await response.write(b'{"StatusCode":%d,"Error":null}\n' % code)
        await response.write_eof()
    return response


# --- attach and logs --------------------------------------------------------------


async def attach(request: web.Request, context: DockerContext) -> web.StreamResponse:
    state = await _find(context, _ref(request))
    name = state.name
    tty = bool((state.spec.get("config") or {}).get("tty"))
    want = {"stdout": boolean(request, "stdout"), "stderr": boolean(request, "stderr")}
    replay, live = boolean(request, "logs"), boolean(request, "stream")
    since = None if replay else follow.now_ns()
    common = shared(context)
    common.attached[name] = common.attached.get(name, 0) + 1
    cancelled = threading.Event()
    try:
        if boolean(request, "stdin") and live and state.status == "created" and name not in common.interactive:
            extra = await context.call(store.sidecar, context.engine, name)
            if (extra.get("Config") or {}).get("OpenStdin"):
                return await _attach_interactive(request, context, name, tty=tty)
        stream = await streams.hijack(request, tty=tty)
        reader = asyncio.ensure_future(_drain_input(request, stream, cancelled))
        try:
            async for entry in follow.entries(context, name, follow=live, since_ns=since, cancelled=cancelled):
                if want.get(entry.stream):
                    await stream.write(streams.encode(entry.stream, entry.text.encode(), tty=tty))
        except (ConnectionResetError, BrokenPipeError):
            pass
        finally:
            reader.cancel()
            await stream.close()
        return stream.response
    finally:
        cancelled.set()
        common.attached[name] -= 1
        if not common.attached[name]:
            del common.attached[name]
        exits(context).notify(name)


async def _attach_interactive(
    request: web.Request, context: DockerContext, name: str, *, tty: bool
) -> web.StreamResponse:
    common = shared(context)
    slot = _Interactive(pump.Pipes(tty=tty, stdin=True))
    common.interactive[name] = slot
    stream = await streams.hijack(request, tty=tty)
    try:
        while slot.job is None:  # until started, or the container is gone
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(slot.started.wait(), 1.0)
            if slot.job is None:
                try:
                    await _find(context, name)
                except DockerError:
                    return stream.response
                transport = request.transport
                if transport is None or transport.is_closing():
                    return stream.response

        def tee(kind: int, data: bytes) -> None:
            slot.log.write("stderr" if kind == streams.STDERR else "stdout", data)

        await pump.pump(
            stream,
            slot.pipes,
            slot.job,
            write_input=lambda fd, data: context.call(pump.write_all, fd, data),
            executor=context.executor,
            tee=tee,
        )
    finally:
        if common.interactive.get(name) is slot:
            del common.interactive[name]
        slot.pipes.close()
        if slot.log is not None:
            slot.log.close()
        await stream.close()
    return stream.response


async def _drain_input(request: web.Request, stream: Any, cancelled: threading.Event) -> None:
    """The client's input: dropped (this container's stdin is not ours). Its end is no
    reason to stop (a half-close); a connection gone is."""
    while await stream.read():
        pass
    await follow.watch_client(request, cancelled)


async def logs(request: web.Request, context: DockerContext) -> web.StreamResponse:
    state = await _find(context, _ref(request))
    tty = bool((state.spec.get("config") or {}).get("tty"))
    want = {"stdout": boolean(request, "stdout"), "stderr": boolean(request, "stderr")}
    if not any(want.values()):
        raise DockerError(400, "Bad parameters: you must choose at least one stream")
    raw_tail = request.query.get("tail", "all")
    tail = None if raw_tail in ("all", "") else integer(request, "tail")
    if tail is not None and tail < 0:
        tail = None
    since = _seconds_ns(request.query.get("since"))
    until = _seconds_ns(request.query.get("until"))
    stamps = boolean(request, "timestamps")
    response = web.StreamResponse(
        status=200, headers={"Content-Type": streams.content_type(tty, request.get("docker_version", (1, 50)))}
    )
    await response.prepare(request)
    cancelled = threading.Event()
    watcher = asyncio.ensure_future(follow.watch_client(request, cancelled))
    try:
        async for entry in follow.entries(
            context, state.name, follow=boolean(request, "follow"), tail=tail, since_ns=since, cancelled=cancelled
        ):
            if not want.get(entry.stream) or (until is not None and entry.time_ns > until):
                continue
            text = (streams.timestamp(entry.time_ns) + " " if stamps else "") + entry.text
            await response.write(streams.encode(entry.stream, text.encode(), tty=tty))
        await response.write_eof()
    except (ConnectionResetError, BrokenPipeError):
        pass
    finally:
        cancelled.set()
        watcher.cancel()
    return response


def _seconds_ns(value: str | None) -> int | None:
    if not value or value == "0":
        return None
    try:
        return int(float(value) * 1e9)
    except ValueError:
        raise DockerError(400, f"invalid time {value!r}") from None


# --- the lifecycle ----------------------------------------------------------------


async def stop(request: web.Request, context: DockerContext) -> web.StreamResponse:
    state = await _find(context, _ref(request))
    if state.status not in ("running", "paused"):
        return web.Response(status=304)
    grace = integer(request, "t")
    signal = request.query.get("signal")
    if signal:
        await context.call(context.engine.containers.kill, state.name, signal=signal)
    await context.call(context.engine.containers.stop, state.name, grace=10.0 if grace is None else float(grace))
    return web.Response(status=204)


async def kill(request: web.Request, context: DockerContext) -> web.StreamResponse:
    state = await _find(context, _ref(request))
    if state.status not in ("running", "paused"):
        raise DockerError(409, f"Cannot kill container: {_ref(request)}: Container {state.name} is not running")
    signal = request.query.get("signal") or "KILL"
    await context.call(context.engine.containers.kill, state.name, signal=signal)
    if signal.upper().removeprefix("SIG") in ("KILL", "9"):  # as moby: SIGKILL returns once it has exited
        deadline = time.monotonic() + KILL_WAIT
        while time.monotonic() < deadline:
            try:
                state = await _find(context, state.name)
            except DockerError:
                break  # removed (AutoRemove)
            if state.status not in ("running", "paused"):
                break
            await exits(context).pause(state.name, state)
    return web.Response(status=204)


async def remove(request: web.Request, context: DockerContext) -> web.StreamResponse:
    state = await _find(context, _ref(request))
    force = boolean(request, "force")
    if state.status in ("running", "paused") and not force:
        raise DockerError(
            409,
            f'cannot remove container "/{state.name}": container is running: stop the container before removing '
            "or force remove",
        )
    await context.call(context.engine.containers.remove, state.name, force=force)
    exits(context).notify(state.name)
    if boolean(request, "v"):
        await context.call(_remove_anonymous_volumes, context, state)
    return web.Response(status=204)


def _remove_anonymous_volumes(context: DockerContext, state: Any) -> None:
    """``rm -v`` and ``--rm``: the volumes made for this container alone (named ones stay)."""
    for volume in state.spec.get("anonymous_volumes") or []:
        with contextlib.suppress(errors.EngineError):
            context.engine.volumes.remove(str(volume))


async def pause(request: web.Request, context: DockerContext) -> web.StreamResponse:
    state = await _find(context, _ref(request))
    await context.call(context.engine.containers.pause, state.name)
    return web.Response(status=204)


async def unpause(request: web.Request, context: DockerContext) -> web.StreamResponse:
    state = await _find(context, _ref(request))
    await context.call(context.engine.containers.unpause, state.name)
    return web.Response(status=204)


async def restart(request: web.Request, context: DockerContext) -> web.StreamResponse:
    state = await _find(context, _ref(request))
    grace = integer(request, "t")
    if state.status == "paused":
        await context.call(context.engine.containers.unpause, state.name)
    if state.status in ("running", "paused"):
        await context.call(context.engine.containers.stop, state.name, grace=10.0 if grace is None else float(grace))
    await context.call(context.engine.containers.start, state.name)
    return web.Response(status=204)


async def rename(request: web.Request, context: DockerContext) -> web.StreamResponse:
    await _find(context, _ref(request))
    raise DockerError(501, "not implemented: rename (the engine names a container's files by its name)")


async def resize(request: web.Request, context: DockerContext) -> web.StreamResponse:
    await _find(context, _ref(request))
    return web.Response(status=200)


# --- looking ------------------------------------------------------------------------


def _matches(state: Any, docker_id: str, wanted: dict[str, list[str]]) -> bool:
    for key, values in wanted.items():
        if not values:
            continue
        if key == "name" and not any(v.lstrip("/") in state.name for v in values):
            return False
        if key == "id" and not any(docker_id.startswith(v) for v in values):
            return False
        if key == "status" and state.status not in values:
            return False
        if key == "label":
            labels = state.spec.get("labels") or {}
            for value in values:
                label, has_value, expected = value.partition("=")
                if label not in labels or (has_value and labels[label] != expected):
                    return False
        if key == "ancestor":
            image = str((state.spec.get("image") or {}).get("name") or "")
            if not any(image == v or image.split(":")[0] == v for v in values):
                return False
    return True


def _listing(context: DockerContext, everything: bool, limit: int | None, wanted: dict[str, list[str]]) -> bytes:
    kept = listing.listing_of(context.engine)
    key, pairs = kept.pairs(context.engine)
    if wanted.get("status"):
        everything = True

    def make() -> bytes:
        rows, states = [], []
        for state, row in pairs:
            if not everything and state.status not in ("running", "paused"):
                continue
            if not _matches(state, row["Id"], wanted):
                continue
            rows.append(row)
            states.append(state)
            if limit is not None and limit > 0 and len(rows) >= limit:
                break
        return listing.answer(rows, states)

    if key is None:
        return make()
    request = (key, everything, limit, json.dumps(wanted, sort_keys=True), int(time.time()))
    return kept.text(request, make)


async def listing_route(request: web.Request, context: DockerContext) -> web.StreamResponse:
    wanted = filters(request)
    limit = integer(request, "limit")
    everything = boolean(request, "all") or (limit is not None and limit > 0)
    body = await context.call(_listing, context, everything, limit, wanted)
    return web.Response(body=body, headers={"Content-Type": "application/json"})


def _inspect(context: DockerContext, ref: str) -> dict[str, Any]:
    state = store.find(context.engine, ref)
    extra = store.sidecar(context.engine, state.name)
    from reconciler.dockerapi import health

    document = views.inspect(state, extra, health.document(context, state.name))
    for network, endpoint in document["NetworkSettings"]["Networks"].items():
        if not endpoint.get("IPAddress"):
            continue
        with contextlib.suppress(Exception):  # a network removed meanwhile: no gateway to show
            ipam = context.engine.networks.inspect(network).get("IPAM", {}).get("Config") or [{}]
            endpoint["Gateway"] = ipam[0].get("Gateway", "")
            endpoint["IPPrefixLen"] = int(str(ipam[0].get("Subnet", "/0")).rpartition("/")[2] or 0)
    settings = document["NetworkSettings"]
    first: dict[str, Any] = next(iter(settings["Networks"].values()), {})
    settings["Gateway"], settings["IPPrefixLen"] = first.get("Gateway", ""), first.get("IPPrefixLen", 0)
    return document


async def inspect(request: web.Request, context: DockerContext) -> web.StreamResponse:
    return json_response(await context.call(_inspect, context, _ref(request)))


def _pids_of(pid: int) -> list[int]:
    """The processes in the pid namespace of ``pid`` (the container's), itself first."""
    try:
        namespace = os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return []
    if namespace == os.readlink("/proc/self/ns/pid"):
        return [pid]  # --pid host: the container's own process only
    found = [pid]
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != pid:
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{entry}/ns/pid") == namespace:
                    found.append(int(entry))
    return found


def _top(pid: int) -> dict[str, Any]:
    import pwd

    ticks = os.sysconf("SC_CLK_TCK")
    rows = []
    for process in _pids_of(pid):
        try:
            with open(f"/proc/{process}/stat") as handle:
                stat = handle.read()
            with open(f"/proc/{process}/cmdline", "rb") as handle:
                argv = [a.decode(errors="replace") for a in handle.read().split(b"\0") if a]
            uid = os.stat(f"/proc/{process}").st_uid
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        ppid = fields[1]
        seconds = (int(fields[11]) + int(fields[12])) // ticks
        try:
            user = pwd.getpwuid(uid).pw_name
        except KeyError:
            user = str(uid)
        command = " ".join(argv) or stat[stat.find("(") + 1 : stat.rfind(")")]
        rows.append([user, str(process), ppid, "0", "", "?", time.strftime("%H:%M:%S", time.gmtime(seconds)), command])
    return {"Titles": ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"], "Processes": rows}


async def top(request: web.Request, context: DockerContext) -> web.StreamResponse:
    state = await _find(context, _ref(request))
    if state.status not in ("running", "paused"):
        raise DockerError(409, f"Container {store.docker_id(state)} is not running")
    return json_response(await context.call(_top, state.pid))


def _stats(context: DockerContext, state: Any) -> dict[str, Any]:
    rows = context.engine.containers.stats([state.name]) if state.status in ("running", "paused") else []
    row: Any = rows[0] if rows else None
    cpu_ns = int(row["cpu_seconds"] * 1e9) if row else 0
    cpus = os.cpu_count() or 1
    try:
        with open("/proc/stat") as handle:
            system = sum(int(v) for v in handle.readline().split()[1:]) * (1_000_000_000 // os.sysconf("SC_CLK_TCK"))
    except OSError:
        system = 0
    limit = (row or {}).get("memory_limit") or _mem_total()
    return {
        "name": "/" + state.name,
        "id": store.docker_id(state),
        "read": views.iso(time.time()),
        "preread": views.ZERO_TIME,
        "pids_stats": {"current": row["pids"] if row else 0},
        "blkio_stats": {},
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": {
            "cpu_usage": {"total_usage": cpu_ns, "usage_in_kernelmode": 0, "usage_in_usermode": cpu_ns},
            "system_cpu_usage": system,
            "online_cpus": cpus,
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
        },
        "precpu_stats": {"cpu_usage": {"total_usage": 0}, "system_cpu_usage": 0, "online_cpus": cpus},
        "memory_stats": {
            "usage": row["memory_usage"] if row else 0,
            "max_usage": (row or {}).get("memory_peak") or 0,
            "limit": limit,
            "stats": {},
        },
        "networks": {},
    }


def _mem_total() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


async def stats(request: web.Request, context: DockerContext) -> web.StreamResponse:
    state = await _find(context, _ref(request))
    streaming = boolean(request, "stream", True) and not boolean(request, "one-shot")
    if not streaming:
        return json_response(await context.call(_stats, context, state))
    response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    await response.prepare(request)
    import json

    try:
        while True:
            state = await _find(context, state.name)
            await response.write(json.dumps(await context.call(_stats, context, state)).encode() + b"\n")
            if state.status not in ("running", "paused"):
                break
            await asyncio.sleep(1.0)
        await response.write_eof()
    except (ConnectionResetError, BrokenPipeError, DockerError):
        pass
    return response


def _prune(context: DockerContext, wanted: dict[str, list[str]]) -> dict[str, Any]:
    deleted = []
    for state in store.states(context.engine):
        if state.status not in ("exited", "created") or state.spec.get("owner"):
            continue
        if wanted.get("label") and not _matches(state, "", {"label": wanted["label"]}):
            continue
        docker_id = store.docker_id(state)
        with contextlib.suppress(errors.EngineError):
            context.engine.containers.remove(state.name)
            deleted.append(docker_id)
    return {"ContainersDeleted": deleted, "SpaceReclaimed": 0}


async def prune(request: web.Request, context: DockerContext) -> web.StreamResponse:
    return json_response(await context.call(_prune, context, filters(request)))


ROUTES: Routes = [
    ("POST", "/containers/create", create),
    ("GET", "/containers/json", listing_route),
    ("POST", "/containers/prune", prune),
    ("GET", "/containers/{id}/json", inspect),
    ("POST", "/containers/{id}/start", start),
    ("POST", "/containers/{id}/wait", wait),
    ("POST", "/containers/{id}/attach", attach),
    ("GET", "/containers/{id}/logs", logs),
    ("POST", "/containers/{id}/stop", stop),
    ("POST", "/containers/{id}/kill", kill),
    ("POST", "/containers/{id}/pause", pause),
    ("POST", "/containers/{id}/unpause", unpause),
    ("POST", "/containers/{id}/restart", restart),
    ("POST", "/containers/{id}/rename", rename),
    ("POST", "/containers/{id}/resize", resize),
    ("GET", "/containers/{id}/top", top),
    ("GET", "/containers/{id}/stats", stats),
    ("DELETE", "/containers/{id}", remove),
]
