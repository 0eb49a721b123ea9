"""``/containers/{id}/exec`` and ``/exec/{id}/...``: a command in a running container.

An exec instance lives in the agent's memory (Docker's do in the daemon's), from
create to a while after it ends. ``start`` hijacks the connection (101), waits a
moment (docker-py loses output that arrives with the headers), then runs the
command through the engine with pipes (or a terminal with ``Tty``) whose output goes
out as stdcopy frames (raw with a TTY) and whose input comes from the client."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import time
from typing import Any

from aiohttp import web

from reconciler.dockerapi import pump, store, streams
from reconciler.dockerapi.context import DockerContext, Routes
from reconciler.dockerapi.errors import DockerError, integer, json_body, json_response
from reconciler.engine import errors
from reconciler.engine.models.containers import ExecRequest, Stdio

#: Finished exec instances are forgotten after this long (Docker: when the container goes).
KEEP_SECONDS = 600.0


class Instance:
    def __init__(self, ident: str, container: str, container_id: str, body: dict[str, Any]) -> None:
        self.id = ident
        self.container = container
        self.container_id = container_id
        self.body = body
        self.running = False
        self.started = False
        self.exit_code: int | None = None
        self.pid = 0
        self.finished_at = 0.0
        self.pipes: pump.Pipes | None = None  # while it runs attached (resize)

    def document(self) -> dict[str, Any]:
        argv = list(self.body.get("Cmd") or [])
        return {
            "ID": self.id,
            "Running": self.running,
            "ExitCode": self.exit_code,
            "ProcessConfig": {
                "tty": bool(self.body.get("Tty")),
                "entrypoint": argv[0] if argv else "",
                "arguments": argv[1:],
                "privileged": bool(self.body.get("Privileged")),
                "user": str(self.body.get("User") or ""),
            },
            "OpenStdin": bool(self.body.get("AttachStdin")),
            "OpenStderr": bool(self.body.get("AttachStderr")),
            "OpenStdout": bool(self.body.get("AttachStdout")),
            "CanRemove": False,
            "ContainerID": self.container_id,
            "DetachKeys": str(self.body.get("DetachKeys") or ""),
            "Pid": self.pid,
        }


def _instances(context: DockerContext) -> dict[str, Instance]:
    value = context.state.setdefault("execs", {})
    assert isinstance(value, dict)
    now = time.monotonic()
    for ident in [i for i, e in value.items() if e.finished_at and now - e.finished_at > KEEP_SECONDS]:
        del value[ident]
    return value


def _instance(context: DockerContext, ident: str) -> Instance:
    found = _instances(context).get(ident)
    if found is None:
        raise DockerError(404, f"No such exec instance: {ident}")
    return found


async def create(request: web.Request, context: DockerContext) -> web.StreamResponse:
    ref = request.match_info["id"]
    body = await json_body(request, required=True)
    command = body.get("Cmd")
    if not isinstance(command, list) or not command or not all(isinstance(a, str) for a in command):
        raise DockerError(400, "No exec command specified")
    state = await context.call(store.find, context.engine, ref)
    if state.status != "running":
        status = "paused" if state.status == "paused" else "not running"
        raise DockerError(409, f"Container {store.docker_id(state)} is {status}")
    ident = secrets.token_hex(32)
    _instances(context)[ident] = Instance(ident, state.name, store.docker_id(state), body)
    return json_response({"Id": ident}, 201)


def _request(body: dict[str, Any]) -> ExecRequest:
    request: ExecRequest = {"command": list(body["Cmd"]), "tty": bool(body.get("Tty"))}
    if body.get("Env"):
        request["env"] = [str(e) for e in body["Env"]]
    if body.get("WorkingDir"):
        request["workdir"] = str(body["WorkingDir"])
    if body.get("User"):
        request["user"] = str(body["User"])
    if body.get("AttachStdin"):
        request["interactive"] = True
    return request


async def start(request: web.Request, context: DockerContext) -> web.StreamResponse:
    instance = _instance(context, request.match_info["id"])
    options = await json_body(request)
    if instance.started:
        raise DockerError(409, f"Exec {instance.id} has already started")
    tty = bool(options.get("Tty", instance.body.get("Tty")))
    exec_request = _request(instance.body)
    exec_request["tty"] = tty
    instance.started = True
    loop = asyncio.get_running_loop()
    if options.get("Detach"):
        null = os.open(os.devnull, os.O_RDWR)
        job = loop.run_in_executor(context.executor, _run, context, instance, exec_request, Stdio(null, null, null))
        job.add_done_callback(lambda _: os.close(null))
        return web.Response(status=200)
    stream = await streams.hijack(request, tty=tty)
    pipes = pump.Pipes(tty=tty, stdin=bool(instance.body.get("AttachStdin")))
    instance.pipes = pipes

    def work() -> None:
        try:
            _run(context, instance, exec_request, pipes.process)
        finally:
            pipes.close_process_ends()

    job = loop.run_in_executor(context.executor, work)
    try:
        await pump.pump(
            stream,
            pipes,
            job,
            write_input=lambda fd, data: context.call(pump.write_all, fd, data),
            executor=context.executor,
        )
    finally:
        pipes.close()
        instance.pipes = None
        await stream.close()
    return stream.response


def _run(context: DockerContext, instance: Instance, request: ExecRequest, stdio: Stdio) -> None:
    instance.running = True
    try:
        result = context.engine.containers.exec(instance.container, request, stdio)
        instance.exit_code = int(result["exit_code"])
    except errors.EngineError as exc:
        instance.exit_code = exc.exit_code if exc.exit_code is not None else 126
        with contextlib.suppress(OSError):
            os.write(stdio.stderr, f"{exc.message}\n".encode())
    finally:
        instance.running = False
        instance.finished_at = time.monotonic()


async def inspect(request: web.Request, context: DockerContext) -> web.StreamResponse:
    return json_response(_instance(context, request.match_info["id"]).document())


async def resize(request: web.Request, context: DockerContext) -> web.StreamResponse:
    instance = _instance(context, request.match_info["id"])
    rows, cols = integer(request, "h", 0) or 0, integer(request, "w", 0) or 0
    if instance.pipes is not None:
        instance.pipes.resize(rows, cols)
    return web.Response(status=200)


ROUTES: Routes = [
    ("POST", "/containers/{id}/exec", create),
    ("POST", "/exec/{id}/start", start),
    ("POST", "/exec/{id}/resize", resize),
    ("GET", "/exec/{id}/json", inspect),
]
