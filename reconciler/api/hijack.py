"""A raw, two-way byte stream out of an HTTP request, after ``101 Switching Protocols``
(the ``Connection: Upgrade``/``Upgrade: tcp`` handshake that Docker's attach and exec
use, and so do ours).

aiohttp can do this but only half-documents it: it recognises ``Upgrade: tcp``,
stops parsing HTTP after such a request, and hands what follows to a parser set with
``protocol.set_parser``; but it closes the connection when the client half-closes
(``shutdown(SHUT_WR)``, which the docker CLI does at the end of stdin), where we must
go on writing the container's output. Its request handler returns nothing from
``eof_received``, which makes asyncio close the transport; ``Runner`` serves with a
handler that returns True once its connection is hijacked. Both are handled here,
once, and tested (``tests/test_api_hijack.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest
from aiohttp.web_server import Server

from reconciler.api import errors


class _Handler(RequestHandler):
    """aiohttp's handler, able to stay half-open after the client's end of input."""

    __slots__ = ("on_eof",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.on_eof: Any = None

    def eof_received(self) -> bool | None:  # type: ignore[override]
        if self.on_eof is not None:
            self.on_eof()
            return True  # keep the transport open for writing: a half-close is not a hang-up
        return None

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """A request aiohttp itself refuses (a request line longer than it reads, bad
        headers) is answered in JSON as every other error, and logged as one line:
        a client's mistake is no traceback in the agent's log."""
        if request.writer.output_size > 0:  # as aiohttp's: the answer has begun, nothing more can be sent
            raise ConnectionError("the response has begun: no error response can follow")
        if isinstance(exc, ConnectionResetError | BrokenPipeError):  # the client went away: not our error
            errors.log.info("%s %s: the client went away", request.method, request.path)
            return errors.protocol_error(400, "the client went away")
        if status >= 500:
            errors.log.error("%s %s failed", request.method, request.path, exc_info=exc)
        else:
            errors.log.warning("refused a request from %s: %s", request.remote, message or exc)
        return errors.protocol_error(status, message)


class _Server(Server):
    def __call__(self) -> RequestHandler:
        return _Handler(self, loop=self._loop, **self._kwargs)


class Runner(web.AppRunner):
    """``web.AppRunner`` whose connections can be hijacked with a half-close."""

    async def _make_server(self) -> Server:
        server = await super()._make_server()
        server.__class__ = _Server  # same layout, one method more: its handlers are ours
        return server


class _Feed:
    """aiohttp's payload-parser interface, feeding a queue."""

    def __init__(self, queue: asyncio.Queue[bytes]) -> None:
        self.queue = queue

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self.queue.put_nowait(bytes(data))
        return False, b""

    def feed_eof(self) -> None:
        self.queue.put_nowait(b"")


class Hijacked:
    """The connection of ``request`` as a byte stream. ``read`` returns ``b""`` once the
    client has closed (or half-closed) its side; ``write`` raises ``ConnectionResetError``
    once the client is gone."""

    def __init__(self, request: web.Request, response: web.StreamResponse, queue: asyncio.Queue[bytes]) -> None:
        self.request = request
        self.response = response
        self._queue = queue
        self._eof = False

    @classmethod
    async def accept(cls, request: web.Request, *, content_type: str | None = None) -> Hijacked:
        headers = {"Connection": "Upgrade", "Upgrade": "tcp"}
        if content_type:
            headers["Content-Type"] = content_type
        response = web.StreamResponse(status=101, headers=headers)
        await response.prepare(request)
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        feed = _Feed(queue)
        protocol: Any = request.protocol
        protocol.set_parser(feed)
        if isinstance(protocol, _Handler):
            protocol.on_eof = feed.feed_eof
        return cls(request, response, queue)

    async def read(self) -> bytes:
        if self._eof:
            return b""
        data = await self._queue.get()
        if not data:
            self._eof = True
        return data

    async def write(self, data: bytes) -> None:
        transport = self.request.transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("the client closed the connection")
        await self.response.write(data)

    async def close(self) -> None:
        with contextlib.suppress(ConnectionResetError, RuntimeError):
            await self.response.write_eof()
        transport = self.request.transport
        if transport is not None:
            transport.close()
