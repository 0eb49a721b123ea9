"""Framing of an attached container's stdio over a hijacked connection.

After ``101 Switching Protocols`` both directions carry frames: an 8-byte header
(stream, three zero bytes, payload size as a big-endian 32-bit integer) then the
payload; the header is Docker's stdcopy format, with stream numbers of our own past
stderr. Framing both ways (not raw stdin with a half-close, as Docker does) lets the
client send end-of-input, signals and terminal sizes in band, and lets the server
end with the exit code, so one connection is the whole of ``run`` or ``exec``.
"""

from __future__ import annotations

import struct

HEADER = struct.Struct(">BxxxI")

# server → client
STDOUT = 1
STDERR = 2
#: The last frame: JSON ``{"exit_code": n}`` or ``{"error": {"code", "message", ...}}``.
EXIT = 3

# client → server
STDIN = 0
#: Standard input ended (the client's stdin reached end of file).
STDIN_EOF = 4
#: A signal for the container's process: its name (``INT``, ``TERM``, ``WINCH``…).
SIGNAL = 5
#: The client's terminal size, JSON ``{"rows": r, "cols": c}``.
RESIZE = 6

#: A frame never carries more than this; larger writes are split.
MAX_PAYLOAD = 1 << 20


def pack(stream: int, payload: bytes) -> bytes:
    return HEADER.pack(stream, len(payload)) + payload


class FrameReader:
    """Incremental parser: ``feed`` bytes as they arrive, get whole frames back."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self._buffer += data
        frames = []
        while len(self._buffer) >= HEADER.size:
            stream, size = HEADER.unpack_from(self._buffer)
            if size > MAX_PAYLOAD:
                raise ValueError(f"frame of {size} bytes exceeds {MAX_PAYLOAD}")
            end = HEADER.size + size
            if len(self._buffer) < end:
                break
            frames.append((stream, bytes(self._buffer[HEADER.size : end])))
            del self._buffer[:end]
        return frames

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame (non-zero at end of stream means it was cut)."""
        return len(self._buffer)
