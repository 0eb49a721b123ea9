"""HTTP to an agent over a UNIX socket or TCP (TLS with a client certificate), with
``http.client`` alone: importing an HTTP library would cost the CLI more than the
request takes (``../shared/design/PERFORMANCE.md``).

Every method takes an operation name (``containers.list``) and its arguments; the
route table (``reconciler.wire.routes``) says how they become a request. Errors come
back as the ``engine.errors`` class the agent raised; an agent that cannot be
reached is ``Unavailable``.

``http.client`` (which brings ``email`` and ``ssl``) and ``urllib.parse`` are
imported on first use: an attached ``run`` never needs them (it speaks its upgrade
over a plain socket, ``raw_socket``), and they cost a fresh CLI process more time
than the agent takes to answer.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Iterator
from typing import IO, TYPE_CHECKING, Any, NamedTuple

from reconciler.engine import errors
from reconciler.wire.route import Route, format_query

if TYPE_CHECKING:
    import http.client
    import socket
    import ssl

    from reconciler.client import http1

#: Upload bodies are sent in pieces of this size.
CHUNK = 1 << 16


class TLSFiles(NamedTuple):
    """A client's TLS material for a ``tcp://`` host: the CA that signed the agent's
    certificate, and the client's own certificate and key (the agent requires one)."""

    ca: str
    cert: str
    key: str


@functools.cache
def _unix_connection() -> type[http.client.HTTPConnection]:
    """``UnixConnection``, defined on first use (see the module's docstring)."""
    import http.client

    class UnixConnection(http.client.HTTPConnection):
        def __init__(self, path: str, timeout: float | None = None) -> None:
            super().__init__("localhost", timeout=timeout)
            self.path = path

        def connect(self) -> None:
            self.sock = _unix_socket(self.path, self.timeout)

    return UnixConnection


def _unix_socket(path: str, timeout: float | None, *, raw: bool = False) -> socket.socket:
    """A connected socket to ``path``. ``raw``: the C socket itself, without
    ``socket.py``'s enum wrappers (about 5 ms of a fresh CLI process), for callers
    that need connect, sendall, recv and close only (attach, ``http1``)."""
    if raw:
        import _socket as module
    else:
        import socket as module  # type: ignore[no-redef]
    sock = module.socket(module.AF_UNIX, module.SOCK_STREAM)
    try:
        if timeout is not None:
            sock.settimeout(timeout)
        sock.connect(path)
    except BaseException:
        sock.close()
        raise
    return sock  # type: ignore[return-value]


def __getattr__(name: str) -> Any:
    """``UnixConnection(path, timeout=None)``: an ``http.client.HTTPConnection`` over
    a UNIX socket, made on first access."""
    if name == "UnixConnection":
        return _unix_connection()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _routes() -> dict[str, Route]:
    from reconciler.wire.routes import BY_OP

    return BY_OP


class Transport:
    def __init__(self, host: str, *, tls: TLSFiles | None = None, timeout: float | None = None) -> None:
        self.host = host
        self.tls = tls
        self.timeout = timeout
        if host.startswith("unix://"):
            self.socket_path: str | None = host.removeprefix("unix://")
        elif host.startswith("tcp://"):
            self.socket_path = None
            address = host.removeprefix("tcp://").rstrip("/")
            self.address, _, port = address.rpartition(":")
            if not self.address or not port.isdigit():
                raise errors.InvalidRequest(f"invalid host {host!r}: use tcp://HOST:PORT")
            self.port = int(port)
        else:
            raise errors.InvalidRequest(f"invalid host {host!r}: use unix:///PATH or tcp://HOST:PORT")

    # --- connections --------------------------------------------------------

    def connection(self, timeout: float | None = None) -> http.client.HTTPConnection:
        timeout = self.timeout if timeout is None else timeout
        if self.socket_path is not None:
            return _unix_connection()(self.socket_path, timeout=timeout)
        import http.client

        if self.tls is None:
            return http.client.HTTPConnection(self.address, self.port, timeout=timeout)
        return http.client.HTTPSConnection(self.address, self.port, timeout=timeout, context=self._ssl_context())

    def raw_socket(self, timeout: float | None = None) -> socket.socket:
        """A connected socket to the agent (TLS-wrapped for a ``tcp://`` host with TLS
        files), for a request that upgrades the connection (attach, exec); the
        ``OSError`` of a failed connect is the caller's to report."""
        timeout = self.timeout if timeout is None else timeout
        if self.socket_path is not None:
            return _unix_socket(self.socket_path, timeout, raw=True)
        import socket

        sock = socket.create_connection((self.address, self.port), timeout=timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as http.client does
            if self.tls is not None:
                sock = self._ssl_context().wrap_socket(sock, server_hostname=self.address)
        except BaseException:
            sock.close()
            raise
        return sock

    def _ssl_context(self) -> ssl.SSLContext:
        import ssl

        assert self.tls is not None
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.tls.ca)
        context.load_cert_chain(self.tls.cert, self.tls.key)
        context.check_hostname = False  # the agent is named by the CA, not by DNS
        return context

    def open(
        self,
        method: str,
        path: str,
        *,
        body: bytes | IO[bytes] | None = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> http.client.HTTPResponse | http1.Response:
        """Send one request and return the response once its headers arrived; an
        error status is raised as its ``EngineError``."""
        if self.socket_path is not None and (body is None or isinstance(body, bytes)):
            return self._open_unix(method, path, body, dict(headers or {}), timeout)
        connection = self.connection(timeout)
        headers = dict(headers or {})
        try:
            if body is not None and not isinstance(body, bytes):
                headers.setdefault("Transfer-Encoding", "chunked")
                connection.putrequest(method, path)
                for key, value in headers.items():
                    connection.putheader(key, value)
                connection.endheaders()
                while chunk := body.read(CHUNK):
                    connection.send(b"%x\r\n%b\r\n" % (len(chunk), chunk))
                connection.send(b"0\r\n\r\n")
            else:
                connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
        except (TimeoutError, ConnectionError, FileNotFoundError, OSError) as exc:
            connection.close()
            raise errors.Unavailable(f"cannot reach the agent at {self.host}: {exc.strerror or exc}") from None
        if response.status >= 400:
            raw = response.read()
            connection.close()
            _raise_error(raw, response.status)
        return response

    def _open_unix(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str], timeout: float | None
    ) -> http1.Response:
        """``open`` over the agent's UNIX socket with ``client.http1``: no
        ``http.client`` (nor the ``ssl`` and ``email`` it imports) in the process."""
        from reconciler.client import http1

        assert self.socket_path is not None
        timeout = self.timeout if timeout is None else timeout
        sock = None
        try:
            sock = _unix_socket(self.socket_path, timeout, raw=True)
            response = http1.request(sock, method, path, body, headers)
        except OSError as exc:  # ConnectionError, TimeoutError, FileNotFoundError, ...
            if sock is not None:
                sock.close()
            raise errors.Unavailable(f"cannot reach the agent at {self.host}: {exc.strerror or exc}") from None
        if response.status >= 400:
            try:
                raw = response.read()
            except OSError:
                raw = b""
            response.close()
            _raise_error(raw, response.status)
        return response

    # --- requests from the route table -------------------------------------

    def _request(self, op: str, kwargs: dict[str, Any]) -> tuple[Route, str, bytes | IO[bytes] | None, dict[str, str]]:
        route = _routes()[op]
        path = route.path
        for name in route.placeholders():
            from urllib.parse import quote

            path = path.replace("{" + name + "}", quote(str(kwargs.pop(name)), safe=""))
        body: bytes | IO[bytes] | None = None
        headers: dict[str, str] = {}
        if route.body is not None:
            argument, model = route.body
            value = kwargs.pop(argument)
            if "/" in model:  # a media type: the file at this path is the body
                body = open(value, "rb")  # noqa: SIM115 - closed by the caller after the request
                headers["Content-Type"] = model
            else:
                body = json.dumps(value).encode()
                headers["Content-Type"] = "application/json"
        query = [(key, text) for key, value in kwargs.items() if value is not None for text in format_query(value)]
        unknown = set(kwargs) - {name for name, _ in route.query}
        if unknown:
            raise TypeError(f"{op}: unexpected arguments {sorted(unknown)}")
        if query:
            from urllib.parse import urlencode

            path += "?" + urlencode(query)
        return route, path, body, headers

    def _send(
        self, op: str, kwargs: dict[str, Any], timeout: float | None = None
    ) -> http.client.HTTPResponse | http1.Response:
        route, path, body, headers = self._request(op, kwargs)
        try:
            return self.open(route.method, path, body=body, headers=headers, timeout=timeout)
        finally:
            if body is not None and not isinstance(body, bytes):
                body.close()

    def call(self, op: str, **kwargs: Any) -> Any:
        """A ``json`` or ``upload`` route: its one JSON document."""
        response = self._send(op, kwargs)
        with response:
            raw = response.read()
        return json.loads(raw) if raw else None

    def lines(self, op: str, **kwargs: Any) -> Iterator[Any]:
        """A ``lines`` route: its items as they arrive. A stream cut by the agent
        (restarted, killed) ends with ``Unavailable``, never silently."""
        response = self._send(op, kwargs, timeout=None)
        with response:
            yield from _json_lines(response, self.host)

    def progress(self, op: str, progress: Callable[[dict[str, Any]], None] | None = None, **kwargs: Any) -> Any:
        """A ``progress`` route: progress events to ``progress``, then the result."""
        response = self._send(op, kwargs, timeout=None)
        with response:
            for item in _json_lines(response, self.host):
                if "progress" in item:
                    if progress is not None:
                        progress(item["progress"])
                elif "result" in item:
                    return item["result"]
        raise errors.Unavailable(f"the agent at {self.host} ended the stream before the result")

    def download(self, op: str, destination: IO[bytes], **kwargs: Any) -> None:
        """A ``download`` route: the body into ``destination``."""
        response = self._send(op, kwargs, timeout=None)
        with response:
            try:
                while chunk := response.read(CHUNK):
                    destination.write(chunk)
            except _cut_errors():
                raise errors.Unavailable(f"the agent at {self.host} ended the download early") from None

    def attach(self, op: str, stdio: Any, **kwargs: Any) -> int:
        """An ``upgrade`` route: the container's stdio over the hijacked connection;
        its exit code."""
        from reconciler.client import attach

        route, path, body, _headers = self._request(op, kwargs)
        assert body is None or isinstance(body, bytes)
        request = json.loads(body) if body else {}
        return attach.run(self, route.method, path, body or b"", stdio=stdio, tty=bool(request.get("tty")))


def _raise_error(raw: bytes, status: int) -> None:
    try:
        document: Any = json.loads(raw)
    except ValueError:
        document = raw.decode(errors="replace")
    raise errors.from_wire(document, status=status)


def _cut_errors() -> tuple[type[BaseException], ...]:
    """What a response cut short raises: ``ConnectionError`` (``client.http1``), and
    ``http.client.IncompleteRead`` when that module is in use."""
    import sys

    client = sys.modules.get("http.client")
    return (ConnectionError,) if client is None else (ConnectionError, client.IncompleteRead)


def _json_lines(response: http.client.HTTPResponse | http1.Response, host: str) -> Iterator[Any]:
    try:
        for line in response:
            if not line.strip():
                continue
            item = json.loads(line)
            if isinstance(item, dict) and set(item) == {"error"}:
                raise errors.from_wire(item["error"])
            yield item
    except _cut_errors() as exc:
        raise errors.Unavailable(f"the stream from the agent at {host} was cut: {exc}") from None
    # Iterating a chunked response ends quietly when the connection is cut (its peek
    # swallows the error); a stream that ended properly has read its last chunk,
    # which leaves chunk_left None.
    if response.chunked and response.chunk_left is not None:
        raise errors.Unavailable(f"the stream from the agent at {host} was cut before its end")


def default_socket() -> str:
    return os.environ.get("RECONCILE_SOCKET", "/run/reconcile/reconcile.sock")
