"""Attached ``run`` and ``exec`` over a hijacked connection (``wire.framing``).

The container's stdio are pipes (or a pseudo-terminal with ``tty``) held by the
agent: their output goes out as STDOUT/STDERR frames as it comes, STDIN frames are
written to its input, SIGNAL frames are delivered with ``kill`` (Ctrl-C on the client
stops the container as ``docker run`` does), RESIZE frames set the terminal's size.
The engine's ``run``/``exec`` runs in a worker thread with the container as the
agent's child; when the exit is final (``Stdio.exited``: for ``run --rm`` before the
container's files are deleted) or the call returns, the output is drained and the
EXIT frame sent.

A client that goes away does not stop the container (as with ``docker run``): its
output is drained and dropped until it exits, and it stays in ``ps -a``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import struct
import termios
import threading
from collections.abc import Callable
from typing import Any

from aiohttp import web

from reconciler.api.dispatch import Context, check_name, json_body
from reconciler.api.hijack import Hijacked
from reconciler.engine import errors
from reconciler.engine.models.containers import Stdio
from reconciler.wire import framing

#: End of input on a terminal (^D): what a tty container gets when the client's stdin ends.
EOT = b"\x04"


def _upgrade_requested(request: web.Request) -> bool:
    connection = request.headers.get("Connection", "").lower()
    return "upgrade" in connection and request.headers.get("Upgrade", "").lower() == "tcp"


async def run(request: web.Request, context: Context) -> web.StreamResponse:
    body = await json_body(request, "containers.RunRequest")
    detach = request.query.get("detach", "").lower() in ("1", "true", "yes")
    if detach:
        result = await context.call(context.engine.containers.run, body, None, detach=True)
        return web.json_response(result, status=201)
    if not _upgrade_requested(request):
        raise errors.InvalidRequest("an attached run needs 'Connection: Upgrade' and 'Upgrade: tcp' (or ?detach=1)")
    body["name"] = check_name(body.get("name") or f"run-{os.urandom(6).hex()}")
    name = body["name"]

    def start(stdio: Stdio) -> Any:
        return context.engine.containers.run(body, stdio)

    return await _attached(request, context, start, name=name, tty=bool(body.get("tty")))


async def exec_(request: web.Request, context: Context) -> web.StreamResponse:
    name = check_name(request.match_info["name"])
    body = await json_body(request, "containers.ExecRequest")
    if not _upgrade_requested(request):
        raise errors.InvalidRequest("exec needs 'Connection: Upgrade' and 'Upgrade: tcp'")
    await context.call(context.engine.containers.inspect, name)  # a missing container is a 404, before the upgrade

    def start(stdio: Stdio) -> Any:
        return context.engine.containers.exec(name, body, stdio)

    return await _attached(request, context, start, name=name, tty=bool(body.get("tty")))


class _Pipes:
    """The agent's ends and the container's ends of its stdio."""

    def __init__(self, *, tty: bool) -> None:
        self.tty = tty
        if tty:
            self.master, slave = os.openpty()
            self.container = Stdio(slave, slave, slave)
            self.outputs = {self.master: framing.STDOUT}
            self.stdin: int | None = self.master
        else:
            stdin_r, self.stdin = os.pipe()
            out_r, out_w = os.pipe()
            err_r, err_w = os.pipe()
            self.container = Stdio(stdin_r, out_w, err_w)
            self.outputs = {out_r: framing.STDOUT, err_r: framing.STDERR}
        for fd in self.outputs:
            os.set_blocking(fd, False)
        self._container_ends: tuple[int, ...] = tuple(set(self.container[:3]))
        self._closing = threading.Lock()

    def close_container_ends(self) -> None:
        """Once only (a second close could hit a descriptor reused meanwhile): when
        the container's exit is final, or when the engine's call returns."""
        with self._closing:
            ends, self._container_ends = self._container_ends, ()
        for fd in ends:
            with contextlib.suppress(OSError):
                os.close(fd)

    def close_input(self) -> None:
        if self.tty:
            with contextlib.suppress(OSError):
                os.write(self.master, EOT)
        elif self.stdin is not None:
            with contextlib.suppress(OSError):
                os.close(self.stdin)
            self.stdin = None

    def resize(self, rows: int, cols: int) -> None:
        if self.tty:
            with contextlib.suppress(OSError):
                fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def close(self) -> None:
        for fd in (*self.outputs, *(() if self.tty or self.stdin is None else (self.stdin,))):
            with contextlib.suppress(OSError):
                os.close(fd)


async def _attached(
    request: web.Request, context: Context, start: Callable[[Stdio], Any], *, name: str, tty: bool
) -> web.StreamResponse:
    loop = asyncio.get_running_loop()
    stream = await Hijacked.accept(request)
    pipes = _Pipes(tty=tty)
    output: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue()
    open_outputs = set(pipes.outputs)

    def readable(fd: int) -> None:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:  # EIO: the terminal's other side is closed
            data = b""
        if data:
            output.put_nowait((pipes.outputs[fd], data))
        else:
            loop.remove_reader(fd)
            open_outputs.discard(fd)
            if not open_outputs:
                output.put_nowait((framing.EXIT, b""))

    for fd in pipes.outputs:
        loop.add_reader(fd, readable, fd)
    exit_code: asyncio.Future[int] = loop.create_future()

    def exited(code: int) -> None:
        # in the worker thread, the exit final (a --rm container out of sight): its
        # output ends here, and the client hears the code before the cleanup is done
        pipes.close_container_ends()
        loop.call_soon_threadsafe(_settle, exit_code, code)

    def work() -> Any:
        try:
            return start(pipes.container._replace(exited=exited))
        finally:
            pipes.close_container_ends()  # the container has its own copies now (or never started)

    job = loop.run_in_executor(context.executor, work)
    incoming = asyncio.ensure_future(_incoming(stream, pipes, context, name))
    client_gone = False
    try:
        while True:
            stream_id, data = await output.get()
            if stream_id == framing.EXIT:
                break
            if client_gone:
                continue
            try:
                await stream.write(framing.pack(stream_id, data))
            except (ConnectionResetError, BrokenPipeError):
                client_gone = True
        await asyncio.wait((exit_code, job), return_when=asyncio.FIRST_COMPLETED)
        final: dict[str, Any]
        if exit_code.done():  # the engine's call may still be cleaning up (run --rm)
            final = {"exit_code": exit_code.result()}
        else:
            try:
                final = {"exit_code": int((await job)["exit_code"])}
            except errors.EngineError as exc:
                final = {"error": exc.to_wire()}
        if not client_gone:
            with contextlib.suppress(ConnectionResetError, BrokenPipeError):
                await stream.write(framing.pack(framing.EXIT, json.dumps(final).encode()))
    finally:
        for fd in list(open_outputs):
            loop.remove_reader(fd)
        incoming.cancel()
        with contextlib.suppress(BaseException):
            await incoming
        if not job.done():
            # cancelled (the agent is stopping): the container runs on; its output
            # pipes are closed under it, as a killed docker run leaves its container
            # (or, after a --rm exit was sent, still cleaning up): its result is nobody's
            job.add_done_callback(lambda done: done.cancelled() or done.exception())
        pipes.close()
        await stream.close()
    return stream.response


def _settle(future: asyncio.Future[int], value: int) -> None:
    if not future.done():
        future.set_result(value)


async def _incoming(stream: Hijacked, pipes: _Pipes, context: Context, name: str) -> None:
    """The client's frames: input, end of input, signals, terminal sizes."""
    reader = framing.FrameReader()
    while True:
        data = await stream.read()
        if not data:
            pipes.close_input()  # a client gone or half-closed: its input has ended
            return
        try:
            frames = reader.feed(data)
        except ValueError:
            pipes.close_input()
            return
        for kind, payload in frames:
            if kind == framing.STDIN and pipes.stdin is not None:
                await context.call(_write_all, pipes.stdin, payload)
            elif kind == framing.STDIN_EOF:
                pipes.close_input()
            elif kind == framing.SIGNAL:
                with contextlib.suppress(errors.EngineError):
                    await context.call(context.engine.containers.kill, name, signal=payload.decode())
            elif kind == framing.RESIZE:
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    size = json.loads(payload)
                    pipes.resize(int(size["rows"]), int(size["cols"]))


def _write_all(fd: int, data: bytes) -> None:
    with contextlib.suppress(OSError):  # the container closed its input: drop the rest
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
