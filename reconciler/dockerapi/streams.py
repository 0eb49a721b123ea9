"""Docker's stream formats: stdcopy frames (``[stream, 0, 0, 0, len32be] + data``),
raw streams for TTYs, RFC 3339 timestamps, and the 101 upgrade of attach and exec."""

from __future__ import annotations

import asyncio
import struct
import time

from aiohttp import web

from reconciler.api.hijack import Hijacked

STDIN, STDOUT, STDERR, SYSTEMERR = 0, 1, 2, 3
_STREAMS = {"stdout": STDOUT, "stderr": STDERR}

MULTIPLEXED = "application/vnd.docker.multiplexed-stream"
RAW = "application/vnd.docker.raw-stream"

#: Output is held this long after the 101: docker-py reads the hijacked socket under
#: urllib3's buffer and loses bytes that arrive with the headers (docker-py#3332).
SETTLE_SECONDS = 0.05


def frame(stream: int | str, data: bytes) -> bytes:
    number = _STREAMS.get(stream, STDOUT) if isinstance(stream, str) else stream
    return struct.pack(">BxxxL", number, len(data)) + data


def encode(stream: int | str, data: bytes, *, tty: bool) -> bytes:
    """``data`` as it goes on the wire: raw with a TTY, a frame without."""
    return data if tty else frame(stream, data)


def content_type(tty: bool, version: tuple[int, int]) -> str:
    return RAW if tty or version < (1, 42) else MULTIPLEXED


def timestamp(time_ns: int) -> str:
    """RFC 3339 with nanoseconds, as ``docker logs -t`` prints it."""
    seconds, nanos = divmod(time_ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{nanos:09d}Z"


async def hijack(request: web.Request, *, tty: bool) -> Hijacked:
    """The 101 UPGRADED answer (Docker's ``Upgrade: tcp``) flushed, then a short pause
    so a client's first read has only the headers."""
    stream = await Hijacked.accept(request, content_type=content_type(tty, request.get("docker_version", (1, 50))))
    await asyncio.sleep(SETTLE_SECONDS)
    return stream
