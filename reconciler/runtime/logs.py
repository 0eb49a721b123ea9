"""Container logs in Docker's json-file format, size-capped with rotation.

One JSON object per line of output: ``{"log": "text\\n", "stream": "stdout",
"time": "2026-11-28T08:42:16.123456789Z"}``, the format ``docker logs`` and log
shippers already read. The writer runs in the container's monitor, so it is
standard library only and keeps nothing but a partial line per stream in memory.

Reading (tail, since, follow) lives in ``logread``, which the monitor never imports.

Files: ``PATH`` is current, ``PATH.1`` the one before, up to ``PATH.{max_files-1}``.
"""

from __future__ import annotations

import os
import time

try:  # the C string encoder json itself uses, without importing json (and re)
    from _json import encode_basestring as _quote
except ImportError:  # pragma: no cover - not CPython
    from json import dumps as _quote

# Not `from typing import TYPE_CHECKING`: importing typing (and with it re) would
# grow every container's monitor; mypy honours this spelling too.
TYPE_CHECKING = False
if TYPE_CHECKING:  # the monitor imports this module: its start-up stays at os and time
    from typing import Literal

    Stream = Literal["stdout", "stderr"]

DEFAULT_MAX_SIZE = 10 * 1024 * 1024
DEFAULT_MAX_FILES = 3


def timestamp(ns: int) -> str:
    """RFC 3339 with nanoseconds, UTC, as Docker writes it."""
    seconds, nanos = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{nanos:09d}Z"


class LogWriter:
    """Append-only writer; call ``write`` with whatever the pipes deliver.

    Lines are written whole: a chunk ending mid-line is held until its newline
    arrives, or until ``close`` (Docker writes such a last partial line as is).
    """

    def __init__(self, path: str, *, max_size: int = DEFAULT_MAX_SIZE, max_files: int = DEFAULT_MAX_FILES) -> None:
        if max_files < 1 or max_size < 1:
            raise ValueError("max_size and max_files must be at least 1")
        self.path = path
        self.max_size = max_size
        self.max_files = max_files
        self._partial: dict[str, bytes] = {"stdout": b"", "stderr": b""}
        self._file = open(path, "ab")  # noqa: SIM115 - held open for the container's life
        self._size = self._file.tell()

    def write(self, stream: Stream, data: bytes, *, now_ns: int | None = None) -> None:
        buffered = self._partial[stream] + data
        *lines, rest = buffered.split(b"\n")
        self._partial[stream] = rest
        stamp = timestamp(now_ns if now_ns is not None else time.time_ns())
        for line in lines:
            self._record(stream, line + b"\n", stamp)

    def _record(self, stream: str, line: bytes, stamp: str) -> None:
        text = _quote(line.decode("utf-8", "replace"))
        record = f'{{"log": {text}, "stream": "{stream}", "time": "{stamp}"}}'
        encoded = record.encode() + b"\n"
        if self._size and self._size + len(encoded) > self.max_size:
            self._rotate()
        self._file.write(encoded)
        self._file.flush()
        self._size += len(encoded)

    def _rotate(self) -> None:
        self._file.close()
        if self.max_files == 1:
            os.truncate(self.path, 0)
        else:
            for index in range(self.max_files - 1, 0, -1):
                source = self.path if index == 1 else f"{self.path}.{index - 1}"
                if os.path.exists(source):
                    os.replace(source, f"{self.path}.{index}")
        self._file = open(self.path, "ab")  # noqa: SIM115
        self._size = 0

    def close(self, *, now_ns: int | None = None) -> None:
        stamp = timestamp(now_ns if now_ns is not None else time.time_ns())
        for stream, rest in self._partial.items():
            if rest:
                self._record(stream, rest, stamp)
        self._partial = {"stdout": b"", "stderr": b""}
        self._file.close()
