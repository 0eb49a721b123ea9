"""Where a build step changes the filesystem, and how the change becomes a layer.

A step that writes files (RUN, COPY, ADD, WORKDIR) gets a scratch directory
``ROOT/images/build/<random>/``: an empty ``upper`` and ``work`` for overlayfs, the
``merged`` mount point, and an ``empty`` directory. The overlay stacks the image's
layer snapshots (topmost first) over ``empty`` (overlayfs wants two lower layers when
it has no upper, and this also gives an image with no layers a root) under ``upper``.

The step's work runs in a forked child that first unshares its mount namespace and
makes every mount private: the overlay exists only there, so whatever happens (an
error, a crash, a ``kill -9`` of the builder: the child has PDEATHSIG set) no mount is
left on the host. The child reports one JSON document through a close-on-exec pipe.
RUN goes one step further inside that child: ``spawn.run`` starts the command as a
container on the mounted root, in a cgroup of its own, with an isolated network
namespace: no interface but loopback, which the runtime does not bring up yet, so a
RUN reaches nothing, not even 127.0.0.1. Builds get no network: that is our decision
until networks land.

When the child is gone, the upper directory *is* the step's change. ``write_layer``
streams ``layerfs.diff_tar`` of it through gzip (header time 0, no file name, so the
same tree gives the same blob) into the content store, hashing the uncompressed tar
on the way for the diff-id. Overlay mounts use ``redirect_dir=off,metacopy=off`` so the
upper holds whole files and plain directories, which is what a layer must carry.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import signal
import stat
import uuid
import zlib
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, BinaryIO, NoReturn, cast

from reconciler.images import layerfs, oci
from reconciler.images.content import ContentStore
from reconciler.runtime import linux

#: What a RUN container's runtime creates as mount points when the image lacks them;
#: they are not the command's doing and are removed from its change (deepest first).
MOUNT_POINTS = ("etc/hostname", "etc/hosts", "etc/resolv.conf", "etc", "dev", "proc", "sys")
#: Lines of a failing RUN's output kept for its error message.
TAIL_LINES = 20


class StepFailed(Exception):
    """The child could not do the step; the message is for the user."""


@dataclass
class Scratch:
    """One step's scratch directory; :meth:`remove` deletes it and everything in it."""

    path: str
    upper: str = field(init=False)
    work: str = field(init=False)
    merged: str = field(init=False)
    empty: str = field(init=False)

    def __post_init__(self) -> None:
        self.upper = os.path.join(self.path, "upper")
        self.work = os.path.join(self.path, "work")
        self.merged = os.path.join(self.path, "merged")
        self.empty = os.path.join(self.path, "empty")

    @classmethod
    def create(cls, images_dir: str) -> Scratch:
        parent = os.path.join(images_dir, "build")
        os.makedirs(parent, exist_ok=True)
        scratch = cls(os.path.join(parent, uuid.uuid4().hex[:16]))
        os.mkdir(scratch.path, 0o700)
        for directory in (scratch.upper, scratch.work, scratch.merged, scratch.empty):
            os.mkdir(directory, 0o755)
        return scratch

    def make_dir(self, name: str) -> str:
        path = os.path.join(self.path, name)
        os.makedirs(path, mode=0o755, exist_ok=True)
        return path

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def _check_path(path: str) -> str:
    if any(character in path for character in ",:\\") or not os.path.isabs(path):
        raise StepFailed(f"path {path!r} cannot be an overlay layer: it must be absolute, without ',', ':' or '\\'")
    return path


def overlay_options(lowers: Iterable[str], *, bottom: str, upper: str | None = None, work: str | None = None) -> str:
    """Mount options for ``lowers`` (topmost first) over ``bottom``, writable with ``upper``."""
    layers = ":".join(_check_path(path) for path in (*lowers, bottom))
    if upper is None or work is None:
        return f"lowerdir={layers}"
    return f"lowerdir={layers},upperdir={_check_path(upper)},workdir={_check_path(work)},redirect_dir=off,metacopy=off"


def mount_overlay(target: str, options: str) -> None:
    """Mount an overlay; only ever called in a child's own mount namespace."""
    linux.mount("overlay", target, "overlay", 0, options)


# --- the child -----------------------------------------------------------------------


def in_namespace(
    body: Callable[[int], dict[str, Any]], *, output: Callable[[bytes], None] | None = None
) -> dict[str, Any]:
    """Run ``body`` in a forked child with a private mount namespace; its JSON-able result.

    With ``output``, ``body`` is given the write end of a pipe (else -1) and every chunk
    read from that pipe is passed to ``output`` while the child runs: the RUN command's
    stdout and stderr. An exception in ``body`` is raised here as StepFailed with its
    message. If this process is interrupted while waiting, the child is killed and
    reaped before the exception goes on.
    """
    result_r, result_w = os.pipe2(os.O_CLOEXEC)
    out_r, out_w = os.pipe2(os.O_CLOEXEC) if output is not None else (-1, -1)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child; its effects are what the tests check
        _child(body, result_r, result_w, out_r, out_w)
    os.close(result_w)
    if out_w >= 0:
        os.close(out_w)
    try:
        if output is not None:
            while chunk := os.read(out_r, 65536):
                output(chunk)
        raw = b""
        while chunk := os.read(result_r, 65536):
            raw += chunk
        os.waitpid(pid, 0)
        pid = 0
    finally:
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        for fd in (result_r, out_r):
            if fd >= 0:
                os.close(fd)
    try:
        document = json.loads(raw)
    except ValueError:
        raise StepFailed("the build step's process died without a report") from None
    if "error" in document:
        raise StepFailed(str(document["error"]))
    return cast(dict[str, Any], document["ok"])


def _child(body: Callable[[int], dict[str, Any]], result_r: int, result_w: int, out_r: int, out_w: int) -> NoReturn:
    """The forked side of in_namespace: never returns into the caller's stack."""
    code = 1
    document: dict[str, Any] = {"error": "the build step did not finish"}
    try:
        os.close(result_r)
        if out_r >= 0:
            os.close(out_r)
        linux.prctl(linux.PR_SET_PDEATHSIG, signal.SIGKILL)
        linux.unshare(linux.CLONE_NEWNS)
        linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
        document = {"ok": body(out_w)}
        code = 0
    except StepFailed as exc:
        document = {"error": str(exc)}
    except BaseException as exc:
        document = {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        with contextlib.suppress(BaseException):
            if out_w >= 0:
                os.close(out_w)  # the parent reads the output to its end before the result
            os.write(result_w, json.dumps(document).encode())
        os._exit(code)


class Lines:
    """Splits a byte stream into text lines for a callback, keeping the last few."""

    def __init__(self, emit: Callable[[str], None] | None) -> None:
        self.emit = emit
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)
        self._partial = b""

    def feed(self, chunk: bytes) -> None:
        *lines, self._partial = (self._partial + chunk).split(b"\n")
        for raw in lines:
            self._line(raw)

    def close(self) -> None:
        if self._partial:
            self._line(self._partial)
            self._partial = b""

    def _line(self, raw: bytes) -> None:
        text = raw.decode("utf-8", "replace").rstrip("\r")
        self.tail.append(text)
        if self.emit is not None:
            self.emit(text)


# --- after a RUN ---------------------------------------------------------------------


def _below(lowers: Iterable[str], rel: str) -> os.stat_result | None:
    """``rel`` in the image the layers make (topmost layer first); None when it is not there."""
    for lower in lowers:
        path = os.path.join(lower, rel)
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            st = os.lstat(path)
            return None if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0 else st  # a whiteout: deleted there
    return None


def _opaque(path: str) -> bool:
    try:
        return os.getxattr(path, layerfs.OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def drop_mount_points(upper: str, lowers: tuple[str, ...]) -> None:
    """Remove from a RUN's change what its runtime made to mount things (MOUNT_POINTS):
    empty files and directories the image did not have, and directories such as
    ``/etc`` that were only copied up to hold them, left empty and otherwise the same."""
    for rel in MOUNT_POINTS:
        path = os.path.join(upper, rel)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        below = _below(lowers, rel)
        if stat.S_ISREG(st.st_mode) and st.st_size == 0 and below is None:
            os.unlink(path)
        elif _unchanged_mount_dir(path, st, below):
            os.rmdir(path)


def _unchanged_mount_dir(path: str, st: os.stat_result, below: os.stat_result | None) -> bool:
    """An empty, non-opaque directory that is new, or a copy-up that changed nothing but times."""
    if not stat.S_ISDIR(st.st_mode) or os.listdir(path) or _opaque(path):
        return False
    if below is None:
        return True
    return stat.S_ISDIR(below.st_mode) and (below.st_mode, below.st_uid, below.st_gid) == (
        st.st_mode,
        st.st_uid,
        st.st_gid,
    )


def is_empty(upper: str) -> bool:
    return not os.listdir(upper)


def adopt(upper: str, target: str) -> None:
    """Make the step's upper directory the layer's snapshot at ``target``, if it has none.

    The upper already is the layer unpacked: whiteouts as 0/0 character devices, opaque
    directories marked, exactly what ``layerfs.unpack`` would make of the blob just
    written from it, but for what overlayfs keeps for itself (its other
    ``trusted.overlay.*`` attributes, removed here), sockets (a layer cannot carry
    them, removed too) and sub-second times (the tar keeps seconds). Renaming it saves
    unpacking the blob again for the next step, which for a large COPY is most of the
    build's time. Another build may have made the snapshot meanwhile: then it stays.
    """
    if os.path.lexists(target):
        return
    for directory, names, files in os.walk(upper):
        for name in (*names, *files):
            _sanitize(os.path.join(directory, name))
    _sanitize(upper)
    os.chmod(upper, 0o755)  # as unpack leaves a snapshot's root
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with contextlib.suppress(OSError):  # made meanwhile by another build: keep that one
        os.rename(upper, target)


def _sanitize(path: str) -> None:
    st = os.lstat(path)
    if stat.S_ISSOCK(st.st_mode):
        os.unlink(path)
        return
    for name in os.listxattr(path, follow_symlinks=False):
        if name.startswith(layerfs.OVERLAY_XATTR_PREFIX) and name != layerfs.OPAQUE_XATTR:
            os.removexattr(path, name, follow_symlinks=False)


# --- the layer -------------------------------------------------------------------------


class _GzipSink(io.RawIOBase):
    """A write-only stream: hashes what it is given (the diff-id) and writes it gzipped."""

    def __init__(self, target: Callable[[bytes], None], level: int) -> None:
        super().__init__()
        self._target = target
        self._hash = hashlib.sha256()
        # wbits 31: a gzip wrapper whose header zlib writes with time 0 and no name
        self._compressor = zlib.compressobj(level, zlib.DEFLATED, 31)

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = bytes(data)
        self._hash.update(view)
        compressed = self._compressor.compress(view)
        if compressed:
            self._target(compressed)
        return len(view)

    def finish(self) -> str:
        self._target(self._compressor.flush())
        return "sha256:" + self._hash.hexdigest()


@dataclass(frozen=True)
class Layer:
    descriptor: oci.Descriptor
    diff_id: str


def write_layer(content: ContentStore, upper: str, *, level: int = 6) -> Layer:
    """The upper directory as a gzip layer blob in ``content``."""
    with content.writer() as ingest:
        sink = _GzipSink(ingest.write, level)
        try:
            layerfs.diff_tar(upper, cast(BinaryIO, sink))
        except layerfs.LayerError as exc:
            raise StepFailed(f"cannot write the layer: {exc}") from None
        diff_id = sink.finish()
        digest = ingest.commit()
        size = ingest.size
    return Layer(oci.Descriptor(oci.OCI_LAYER_GZIP, digest, size), diff_id)
