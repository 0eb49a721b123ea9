"""The client's side of an attached ``run`` or ``exec`` through an agent.

The request goes out with ``Connection: Upgrade``; after ``101`` the socket carries
frames (``reconciler.wire.framing``) both ways. One thread, one ``select`` loop:
stdin (when it is to be forwarded) becomes STDIN frames and, at its end, STDIN_EOF;
STDOUT/STDERR frames go to the caller's descriptors; the EXIT frame ends it with the
container's exit code (or the engine's error, raised). Signals the user sends to the
CLI (Ctrl-C, SIGTERM, SIGHUP) are forwarded to the container as SIGNAL frames, as
``docker run``'s ``--sig-proxy`` does; a terminal's size is sent at start and on
SIGWINCH. A connection that ends without an EXIT frame (the agent was killed) is
``Unavailable`` with a clear message.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
from typing import TYPE_CHECKING, Any

from reconciler.engine import errors
from reconciler.wire import framing

if TYPE_CHECKING:
    import socket

    from reconciler.client.transport import Transport

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _connect(transport: Transport) -> socket.socket:
    """A plain socket: the upgrade is written by hand below, so ``http.client`` (and
    what it imports) stays out of ``run``'s path."""
    try:
        return transport.raw_socket(timeout=None)
    except OSError as exc:
        raise errors.Unavailable(f"cannot reach the agent at {transport.host}: {exc.strerror or exc}") from None


def _handshake(sock: socket.socket, method: str, path: str, body: bytes, host: str) -> bytes:
    """Send the upgrade request; return what followed the 101's headers. A refusal
    (an error status) is raised as its ``EngineError``."""
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    sock.sendall(head.encode() + body)
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = sock.recv(65536)
        if not chunk:
            raise errors.Unavailable(f"the agent at {host} closed the connection before answering")
        received += chunk
    header, _, rest = received.partition(b"\r\n\r\n")
    status_line, *header_lines = header.decode("latin-1").split("\r\n")
    status = int(status_line.split()[1])
    if status == 101:
        return rest
    length = 0
    for line in header_lines:
        key, _, value = line.partition(":")
        if key.strip().lower() == "content-length":
            length = int(value.strip())
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    try:
        document: Any = json.loads(rest[:length] or b"null")
    except ValueError:
        document = rest.decode(errors="replace")
    raise errors.from_wire(document, status=status)


def _terminal_size(fd: int) -> dict[str, int] | None:
    try:
        size = os.get_terminal_size(fd)
    except OSError:
        return None
    return {"rows": size.lines, "cols": size.columns}


def run(transport: Transport, method: str, path: str, body: bytes, *, stdio: Any, tty: bool) -> int:
    sock = _connect(transport)
    try:
        rest = _handshake(sock, method, path, body, transport.host)
        return _pump(sock, rest, stdio=stdio, tty=tty, host=transport.host)
    finally:
        sock.close()


def _pump(sock: socket.socket, rest: bytes, *, stdio: Any, tty: bool, host: str) -> int:
    reader = framing.FrameReader()
    stdin = stdio.stdin if stdio is not None else None
    stdout = stdio.stdout if stdio is not None else 1
    stderr = stdio.stderr if stdio is not None else 2
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    pending: list[str] = []
    previous: dict[int, Any] = {}

    def deliver(signum: int, _frame: object) -> None:
        pending.append("WINCH" if signum == signal.SIGWINCH else signal.Signals(signum).name.removeprefix("SIG"))
        with contextlib.suppress(OSError):
            os.write(wake_w, b"!")

    for sig in (*FORWARDED, *((signal.SIGWINCH,) if tty else ())):
        try:
            previous[sig] = signal.signal(sig, deliver)
        except ValueError:  # not the main thread (an embedding caller's): nothing is forwarded
            break
    try:
        if tty and stdin is not None and (size := _terminal_size(stdin)) is not None:
            sock.sendall(framing.pack(framing.RESIZE, json.dumps(size).encode()))
        watched: list[int] = [sock.fileno(), wake_r] + ([stdin] if stdin is not None else [])
        frames = reader.feed(rest)
        while True:
            for stream, payload in frames:
                if stream == framing.EXIT:
                    result = json.loads(payload)
                    if "error" in result:
                        raise errors.from_wire(result["error"])
                    return int(result["exit_code"])
                _write_all(stdout if stream == framing.STDOUT else stderr, payload)
            frames = []
            ready, _, _ = select.select(watched, [], [])
            if wake_r in ready:
                os.read(wake_r, 512)
                while pending:
                    name = pending.pop(0)
                    if name == "WINCH":
                        if stdin is not None and (size := _terminal_size(stdin)) is not None:
                            sock.sendall(framing.pack(framing.RESIZE, json.dumps(size).encode()))
                    else:
                        sock.sendall(framing.pack(framing.SIGNAL, name.encode()))
            if stdin is not None and stdin in ready:
                data = _read(stdin)
                if data:
                    sock.sendall(framing.pack(framing.STDIN, data))
                else:
                    sock.sendall(framing.pack(framing.STDIN_EOF, b""))
                    watched.remove(stdin)
            if sock.fileno() in ready:
                try:
                    data = sock.recv(65536)
                except ConnectionError:
                    data = b""
                if not data:
                    raise errors.Unavailable(f"the connection to the agent at {host} ended before the container did")
                frames = reader.feed(data)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        os.close(wake_r)
        os.close(wake_w)


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:
        return b""  # a terminal hung up: end of input


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
