"""One HTTP/1.1 request to our own agent over its UNIX socket, with the C socket
module alone.

``http.client`` imports ``ssl`` and the ``email`` package (about 30 ms of a fresh
CLI process, more than the request itself), for features a request to the local
agent never needs: no TLS, no proxies, one request per connection. The agent is
aiohttp, whose responses are either sized (``Content-Length``) or chunked
(``Transfer-Encoding: chunked``), so those two framings and a body read to the end
of the connection are all this reads. TCP hosts and uploads still use
``http.client``.

The response offers what ``transport`` uses of ``http.client.HTTPResponse``:
``status``, ``read([n])``, iteration by lines, ``chunked``/``chunk_left`` (None once
the last chunk was read: the stream ended properly), ``close`` and ``with``. A
connection cut before the body's end is a ``ConnectionError``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

#: One receive from the socket.
RECEIVE = 1 << 16


class Response:
    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._buffer = b""
        self._eof = False
        line = self._line()
        parts = line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise ConnectionError(f"not an HTTP response from the agent: {line[:80]!r}")
        self.status = int(parts[1])
        self.headers: dict[str, str] = {}
        while line := self._line().rstrip(b"\r\n"):
            name, _, value = line.decode("latin-1").partition(":")
            self.headers[name.strip().lower()] = value.strip()
        self.chunked = "chunked" in self.headers.get("transfer-encoding", "").lower()
        #: bytes left in the current chunk (chunked), or of the body (sized); None at the end
        self.chunk_left: int | None = 0 if self.chunked else None
        self._length: int | None = None
        if not self.chunked and "content-length" in self.headers:
            self._length = int(self.headers["content-length"])

    # --- the connection ----------------------------------------------------------

    def _receive(self) -> bool:
        if self._eof:
            return False
        data = self._sock.recv(RECEIVE)
        if not data:
            self._eof = True
            return False
        self._buffer += data
        return True

    def _line(self) -> bytes:
        while (end := self._buffer.find(b"\n")) < 0:
            if not self._receive():
                raise ConnectionError("the agent closed the connection mid-response")
        line, self._buffer = self._buffer[: end + 1], self._buffer[end + 1 :]
        return line

    def _take(self, size: int) -> bytes:
        """Up to ``size`` bytes, at least one (waiting for them); b"" at the end of the connection."""
        if not self._buffer:
            self._receive()
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    # --- the body ------------------------------------------------------------------

    def read(self, size: int = -1) -> bytes:
        """The next ``size`` bytes of the body (all of it when negative); fewer only at its end."""
        out = bytearray()
        while size < 0 or len(out) < size:
            data = self._next(RECEIVE if size < 0 else size - len(out))
            if not data:
                break
            out += data
        return bytes(out)

    def _next(self, size: int) -> bytes:
        """Some of the body (at most ``size`` bytes); b"" at its proper end."""
        if self.chunked:
            if self.chunk_left is None:
                return b""
            if self.chunk_left == 0:
                header = self._line().split(b";", 1)[0].strip()
                try:
                    self.chunk_left = int(header, 16)
                except ValueError:
                    raise ConnectionError(f"a bad chunk header from the agent: {header[:40]!r}") from None
                if self.chunk_left == 0:  # the last chunk: trailers (none), then the blank line
                    while self._line().strip():
                        pass
                    self.chunk_left = None
                    return b""
            data = self._take(min(size, self.chunk_left))
            if not data:
                raise ConnectionError("the agent closed the connection mid-chunk")
            self.chunk_left -= len(data)
            if self.chunk_left == 0 and self._line().strip():
                raise ConnectionError("a chunk from the agent did not end with CRLF")
            return data
        if self._length is not None:
            if self._length == 0:
                return b""
            data = self._take(min(size, self._length))
            if not data:
                raise ConnectionError(f"the agent closed the connection {self._length} bytes before the body's end")
            self._length -= len(data)
            return data
        return self._take(size)  # to the end of the connection

    def __iter__(self) -> Iterator[bytes]:
        pending = b""
        while data := self._next(RECEIVE):
            pending += data
            *lines, pending = pending.split(b"\n")
            for line in lines:
                yield line + b"\n"
        if pending:
            yield pending

    # --- closing -------------------------------------------------------------------

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> Response:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def request(sock: Any, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> Response:
    """Send one request on the connected ``sock`` and read the response's head."""
    lines = [f"{method} {path} HTTP/1.1", "Host: localhost", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if body is not None or method in ("POST", "PUT"):
        lines.append(f"Content-Length: {len(body or b'')}")
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b""))
    return Response(sock)
