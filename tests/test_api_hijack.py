"""The hijacked-connection escape hatch (``api.hijack``) against a real aiohttp server
on a UNIX socket: bytes both ways after 101, and writing after the client
half-closes (what the docker CLI does when stdin ends). Clients write only after the
101 (docker's and ours do)."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator

import pytest
from aiohttp import web

from reconciler.api.hijack import Hijacked, Runner


@pytest.fixture
def echo_server(tmp_path) -> Iterator[str]:
    path = str(tmp_path / "api.sock")
    ready = threading.Event()
    loop = asyncio.new_event_loop()
    runner: list[web.AppRunner] = []

    async def echo(request: web.Request) -> web.StreamResponse:
        stream = await Hijacked.accept(request)
        received = b""
        while data := await stream.read():
            received += data
            await stream.write(b"got:" + data)
        await stream.write(b"total:" + str(len(received)).encode())  # after the client's half-close
        await stream.close()
        return stream.response

    async def start() -> None:
        app = web.Application()
        app.router.add_post("/echo", echo)
        runner.append(Runner(app, handle_signals=False))
        await runner[0].setup()
        await web.UnixSite(runner[0], path).start()
        ready.set()

    thread = threading.Thread(target=lambda: (loop.run_until_complete(start()), loop.run_forever()), daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield path
    finally:
        asyncio.run_coroutine_threadsafe(runner[0].cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def _upgrade(path: str) -> tuple[socket.socket, bytes]:
    sock = socket.socket(socket.AF_UNIX)
    sock.settimeout(10)
    sock.connect(path)
    sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n")
    received = b""
    while b"\r\n\r\n" not in received:
        received += sock.recv(4096)
    head, _, rest = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock, rest


def _read_until(sock: socket.socket, marker: bytes, already: bytes = b"") -> bytes:
    data = already
    while marker not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def test_bytes_flow_both_ways_and_writes_go_on_after_a_half_close(echo_server):
    sock, rest = _upgrade(echo_server)
    with sock:
        sock.sendall(b"hello")
        assert _read_until(sock, b"got:hello", rest).endswith(b"got:hello")
        sock.shutdown(socket.SHUT_WR)  # end of input, as docker's CLI does
        assert _read_until(sock, b"total:5").endswith(b"total:5")
        assert sock.recv(4096) == b""  # then the server closes
