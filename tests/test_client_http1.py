"""``client.http1``: the CLI's HTTP/1.1 over the agent's UNIX socket without
``http.client``. Canned responses over a socket pair (the framings aiohttp sends,
and cuts), then the real agent through the transport."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading

import pytest

from reconciler.client import http1
from reconciler.client.transport import Transport, _json_lines
from reconciler.engine import errors
from tests import agent_fixtures
from tests.agent_fixtures import make_agent

agents = agent_fixtures.agents  # the fixture


def _serve(raw: bytes) -> socket.socket:
    client, server = socket.socketpair()

    def answer() -> None:
        server.recv(65536)  # the request
        server.sendall(raw)
        server.close()

    threading.Thread(target=answer, daemon=True).start()
    return client


def _response(raw: bytes) -> http1.Response:
    return http1.request(_serve(raw), "GET", "/v1/x", None, {})


def test_a_sized_body() -> None:
    with _response(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n[1, 2]\n") as r:
        assert (r.status, r.headers["content-type"], r.read()) == (200, "application/json", b"[1, 2]\n")


def test_chunks_split_anywhere_read_as_lines() -> None:
    body = b'{"a": 1}\n{"b"' + b": 2}\n"
    chunked = b"".join(b"%x\r\n%b\r\n" % (len(part), part) for part in (body[:5], body[5:13], body[13:])) + b"0\r\n\r\n"
    response = _response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked)
    assert list(response) == [b'{"a": 1}\n', b'{"b": 2}\n']
    assert response.chunked and response.chunk_left is None  # ended properly


def test_a_stream_cut_mid_chunk_or_between_chunks_is_noticed() -> None:
    cut = _response(b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n{"a": 1}\n')
    with pytest.raises(errors.Unavailable, match="cut"):
        list(_json_lines(cut, "unix:///x"))
    between = _response(b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\n{"a": 1}\n\r\n')
    with pytest.raises(errors.Unavailable, match="cut"):
        list(_json_lines(between, "unix:///x"))


def test_a_sized_body_cut_short_is_a_connection_error() -> None:
    with pytest.raises(ConnectionError):
        _response(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort").read()


def test_garbage_instead_of_http_is_refused() -> None:
    with pytest.raises(ConnectionError, match="not an HTTP response"):
        _response(b"SSH-2.0-OpenSSH\r\n\r\n")


@pytest.mark.requires_root
def test_the_cli_through_the_agent_never_imports_http_client(agents, tmp_path) -> None:
    agent = make_agent(agents, tmp_path / "a")
    agent.image()
    code = (
        "import sys; from reconciler.cli.main import main; code = main(sys.argv[1:]);"
        " assert 'http.client' not in sys.modules and 'ssl' not in sys.modules, sorted(sys.modules); sys.exit(code)"
    )
    for command in (
        ["ps", "-a"],
        ["images"],
        ["system", "info"],
        ["image", "inspect", "busybox:local"],
        ["volume", "ls"],
    ):
        result = subprocess.run(
            [sys.executable, "-c", code, "--host", agent.host, *command],
            capture_output=True,
            text=True,
            timeout=60,
            env=agent.env,
        )
        assert result.returncode == 0, (command, result.stderr)
    with pytest.raises(errors.NotFound):
        Transport(agent.host).call("containers.inspect", name="nosuch")
