"""A process's stdio held by the agent and pumped over a hijacked connection: its
output out as stdcopy frames (raw with a TTY), the client's bytes in.

Two kinds of fd copies outlive what they should: the engine forks helpers (exec's
setns child, a container's outer process) that keep every fd open at the time. So
input is a socket, whose ``shutdown(SHUT_WR)`` is an EOF whoever holds copies, and
output ends when the process has exited and what it wrote has been read, not at
EOF (which a copy in another helper would hold back)."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import select
import socket
import struct
import termios
import threading
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

from reconciler.dockerapi import streams
from reconciler.engine.models.containers import Stdio

#: How often the output reader looks at whether the process has exited.
POLL_SECONDS = 0.05
#: End of input on a terminal (^D).
EOT = b"\x04"


class Pipes:
    """The agent's and the process's ends of its stdio."""

    def __init__(self, *, tty: bool, stdin: bool) -> None:
        self.tty = tty
        self.master: int | None = None
        self._input: socket.socket | None = None
        self.stdin: int | None = None
        if tty:
            self.master, slave = os.openpty()
            self.process = Stdio(slave, slave, slave)
            self.outputs = {self.master: streams.STDOUT}
            self.stdin = self.master if stdin else None
        else:
            if stdin:
                ours, theirs = socket.socketpair()
                self._input, self.stdin = ours, ours.fileno()
                stdin_r = theirs.detach()
            else:
                stdin_r = os.open(os.devnull, os.O_RDONLY)
            out_r, out_w = os.pipe()
            err_r, err_w = os.pipe()
            self.process = Stdio(stdin_r, out_w, err_w)
            self.outputs = {out_r: streams.STDOUT, err_r: streams.STDERR}
        for fd in self.outputs:
            os.set_blocking(fd, False)

    def close_process_ends(self) -> None:
        """Once the process has its own copies (or never started)."""
        for fd in set(self.process[:3]):
            with contextlib.suppress(OSError):
                os.close(fd)

    def close_input(self) -> None:
        if self.tty:
            if self.stdin is not None:
                with contextlib.suppress(OSError):
                    os.write(self.stdin, EOT)
        elif self._input is not None:
            with contextlib.suppress(OSError):
                self._input.shutdown(socket.SHUT_WR)
        self.stdin = None

    def resize(self, rows: int, cols: int) -> None:
        if self.master is not None and rows > 0 and cols > 0:
            with contextlib.suppress(OSError):
                fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def close(self) -> None:
        if self._input is not None:
            self._input.close()
        for fd in self.outputs:
            with contextlib.suppress(OSError):
                os.close(fd)


def _read_all(fd: int) -> tuple[bytes, bool]:
    """What ``fd`` has now, and whether it is at its end."""
    chunks: list[bytes] = []
    while True:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return b"".join(chunks), False
        except OSError:  # EIO: a terminal whose other side is closed
            return b"".join(chunks), True
        if not data:
            return b"".join(chunks), True
        chunks.append(data)


def _read_outputs(pipes: Pipes, emit: Callable[[int, bytes], None], stop: threading.Event) -> None:
    """In a worker thread: what the outputs deliver, to ``emit``, until each is at its
    end, or ``stop`` is set and nothing more is there. Never on the event loop: a
    read can wait for the pipe's lock, which a process splicing from its stdin into
    this pipe (busybox ``cat`` uses sendfile) holds until input arrives."""
    fds = list(pipes.outputs)
    try:
        while fds:
            ready, _, _ = select.select(fds, [], [], POLL_SECONDS)
            for fd in ready:
                data, end = _read_all(fd)
                if data:
                    emit(pipes.outputs[fd], data)
                if end:
                    fds.remove(fd)
            if stop.is_set() and not ready:
                for fd in fds:  # exited: the last of what it wrote
                    data, _ = _read_all(fd)
                    if data:
                        emit(pipes.outputs[fd], data)
                return
    finally:
        emit(-1, b"")


async def pump(
    stream: Any,
    pipes: Pipes,
    job: asyncio.Future[Any],
    *,
    write_input: Callable[[int, bytes], Any],
    executor: Executor,
    tee: Callable[[int, bytes], None] | None = None,
) -> None:
    """Output to ``stream`` (and ``tee``) until ``job`` (the process's life) is done and
    its output read; the client's bytes to the process meanwhile. A client gone is no
    reason to stop: the output is still read (and teed) until the end."""
    loop = asyncio.get_running_loop()
    output: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue()
    stop = threading.Event()

    def emit(kind: int, data: bytes) -> None:
        loop.call_soon_threadsafe(output.put_nowait, (kind, data))

    job.add_done_callback(lambda _: stop.set())
    reader = loop.run_in_executor(executor, _read_outputs, pipes, emit, stop)
    incoming = asyncio.ensure_future(_incoming(stream, pipes, write_input))
    gone = False
    try:
        while True:
            kind, data = await output.get()
            if kind < 0:
                break
            if tee is not None:
                tee(kind, data)
            if not gone:
                try:
                    await stream.write(streams.encode(kind, data, tty=pipes.tty))
                except (ConnectionResetError, BrokenPipeError):
                    gone = True
        await asyncio.wait([job])
    finally:
        stop.set()
        incoming.cancel()
        with contextlib.suppress(BaseException):
            await incoming
        with contextlib.suppress(BaseException):
            await reader


async def _incoming(stream: Any, pipes: Pipes, write_input: Callable[[int, bytes], Any]) -> None:
    """Raw input from the client; its end (or half-close) is the process's EOF."""
    while True:
        data = await stream.read()
        if not data:
            pipes.close_input()
            return
        if pipes.stdin is not None:
            await write_input(pipes.stdin, data)


def write_all(fd: int, data: bytes) -> None:
    with contextlib.suppress(OSError):  # the process closed its input: drop the rest
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
