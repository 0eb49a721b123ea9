"""The content-addressed blob store: ``ROOT/images/blobs/sha256/<hex>``.

Writes are ingest-then-commit: bytes go to ``ingest/<pid>-<random>``, hashed as
they arrive; ``commit`` checks digest and size and renames the file into place.
A reader therefore never sees half a blob, and a writer killed mid-way leaves
only an ingest file that names its (dead) process, which ``clean_ingests``
removes. Standard library only.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from types import TracebackType
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    import hashlib

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def _sha256(data: bytes = b"") -> hashlib._Hash:
    """hashlib's sha256, imported on first use: OpenSSL's binding costs about 3 ms to
    load, and ``reconcile run`` only reads blobs it trusts."""
    import hashlib

    return hashlib.sha256(data)


class BlobError(Exception):
    pass


def check_digest(digest: str) -> str:
    """``digest`` if it is a sha256 digest; anything else (another algorithm, a
    path trick) is refused before it becomes a file name."""
    if not _DIGEST.match(digest):
        raise BlobError(f"unsupported or malformed digest {digest!r} (only sha256 is supported)")
    return digest


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Ingest:
    """One blob being written. Use as a context manager: leaving it without
    ``commit`` removes the ingest file."""

    def __init__(self, store: ContentStore) -> None:
        self.store = store
        os.makedirs(store.ingest_dir, exist_ok=True)
        self.path = os.path.join(store.ingest_dir, f"{os.getpid()}-{os.urandom(8).hex()}")
        self._file: BinaryIO = open(self.path, "wb")  # noqa: SIM115 - closed in commit/abort
        self._hash = _sha256()
        self.size = 0
        self.committed: str | None = None

    def write(self, data: bytes) -> None:
        self._file.write(data)
        self._hash.update(data)
        self.size += len(data)

    @property
    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()

    def commit(self, expected: str | None = None, size: int | None = None) -> str:
        """Verify and move into place; the digest. A mismatch removes the ingest."""
        digest = self.digest
        try:
            if expected is not None and digest != expected:
                raise BlobError(f"digest mismatch: expected {expected}, got {digest} ({self.size} bytes)")
            if size is not None and size != self.size:
                raise BlobError(f"size mismatch for {digest}: expected {size} bytes, got {self.size}")
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            target = self.store.path(digest)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.replace(self.path, target)
        except BaseException:
            self.abort()
            raise
        self.committed = digest
        return digest

    def abort(self) -> None:
        self._file.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    def __enter__(self) -> Ingest:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self.committed is None:
            self.abort()


class ContentStore:
    def __init__(self, images_dir: str) -> None:
        self.blob_dir = os.path.join(images_dir, "blobs", "sha256")
        self.ingest_dir = os.path.join(images_dir, "ingest")

    def path(self, digest: str) -> str:
        return os.path.join(self.blob_dir, check_digest(digest).removeprefix("sha256:"))

    def has(self, digest: str) -> bool:
        return os.path.exists(self.path(digest))

    def size(self, digest: str) -> int:
        return os.stat(self.path(digest)).st_size

    def read(self, digest: str, *, verify: bool = True) -> bytes:
        """A small blob (manifest, config), verified: a corrupt one is an error, not
        silently different content. ``verify=False`` is for the path of ``run``,
        which trusts what was verified when it was written (``fsck`` re-checks)."""
        try:
            with open(self.path(digest), "rb") as handle:
                data = handle.read()
        except FileNotFoundError:
            raise BlobError(f"blob {digest} is missing from the store") from None
        if verify and "sha256:" + _sha256(data).hexdigest() != digest:
            raise BlobError(f"blob {digest} is corrupt (its content no longer matches its digest)")
        return data

    def open(self, digest: str) -> BinaryIO:
        try:
            return open(self.path(digest), "rb")
        except FileNotFoundError:
            raise BlobError(f"blob {digest} is missing from the store") from None

    def writer(self) -> Ingest:
        return Ingest(self)

    def put(self, data: bytes, expected: str | None = None) -> str:
        with self.writer() as ingest:
            ingest.write(data)
            return ingest.commit(expected, len(data))

    def put_file(self, path: str, expected: str | None = None) -> str:
        with open(path, "rb") as source, self.writer() as ingest:
            for chunk in iter(lambda: source.read(1 << 20), b""):
                ingest.write(chunk)
            return ingest.commit(expected)

    def delete(self, digest: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path(digest))

    def digests(self) -> Iterator[str]:
        with contextlib.suppress(FileNotFoundError):
            for name in os.listdir(self.blob_dir):
                if len(name) == 64:
                    yield "sha256:" + name

    def verify(self, digest: str) -> str | None:
        """None when the blob matches its digest, else what is wrong."""
        hasher = _sha256()
        try:
            with open(self.path(digest), "rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    hasher.update(chunk)
        except OSError as exc:
            return f"unreadable: {exc.strerror}"
        actual = "sha256:" + hasher.hexdigest()
        return None if actual == digest else f"content hashes to {actual}"

    def clean_ingests(self) -> int:
        """Remove ingest files whose writing process is gone; how many."""
        removed = 0
        with contextlib.suppress(FileNotFoundError):
            for name in os.listdir(self.ingest_dir):
                pid = name.split("-", 1)[0]
                if pid.isdigit() and int(pid) != os.getpid() and os.path.exists(f"/proc/{pid}"):
                    continue
                if pid.isdigit() and int(pid) == os.getpid():
                    continue
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(self.ingest_dir, name))
                    removed += 1
        return removed
