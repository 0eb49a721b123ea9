"""Writing into a build step's root filesystem: COPY, ADD's archive extraction, WORKDIR.

These run in the build step's own mount namespace, on the overlay of the image so far,
so every write lands in the step's upper directory and becomes its layer. The root is
an image, and images are untrusted: a destination is resolved with
``rootfs_path.resolve`` (symlinks evaluated as if the root were ``/``), directories are
created one component at a time, and the last component is never followed: an
existing non-directory there is replaced, whatever it points at. Only what the source
holds is written, so after the destination every component is one this code made or a
real directory it checked.

Owners follow Docker: files from the build context become root's (0:0), files from
another image keep theirs, ``--chown`` overrides both; ``--chmod`` overrides modes.
Times are kept from the source.
"""

from __future__ import annotations

import lzma
import os
import posixpath
import shutil
import stat
import tarfile
import typing
from dataclasses import dataclass

import zstandard

from reconciler.images.build.context import Entry, Source, components, open_archive
from reconciler.runtime import rootfs_path

_CHUNK = 1 << 20


class CopyError(Exception):
    """What a COPY or ADD cannot do in the image; the message is the user's to read."""


@dataclass(frozen=True)
class Ownership:
    """``owner``: --chown's (uid, gid), else None; ``keep``: keep the source's owners (an
    image's files) rather than root's (the context's)."""

    owner: tuple[int, int] | None = None
    keep: bool = False
    mode: int | None = None

    def ids(self, entry: Entry) -> tuple[int, int]:
        if self.owner is not None:
            return self.owner
        return (entry.uid, entry.gid) if self.keep else (0, 0)


class Writer:
    """Places sources under one root; directory times are set by :meth:`finish`."""

    def __init__(self, root: str, ownership: Ownership) -> None:
        self.root = os.path.realpath(root)
        self.ownership = ownership
        self._times: list[tuple[str, int]] = []

    def inside(self, path: str) -> str:
        """The host path of ``path`` in the root, symlinks resolved within it."""
        return rootfs_path.resolve(self.root, path)

    def shown(self, host: str) -> str:
        """A host path under the root as the image sees it."""
        rel = os.path.relpath(host, self.root)
        return "/" if rel == "." else "/" + rel

    def ensure_dir(self, path: str, *, owner: tuple[int, int] | None = None) -> str:
        """``mkdir -p`` inside the root; new directories get mode 0755 and ``owner``
        (--chown's, else root). Returns the directory's host path."""
        host = self.inside(path)
        missing: list[str] = []
        probe = host
        while not os.path.lexists(probe):
            missing.append(probe)
            probe = os.path.dirname(probe)
        if not stat.S_ISDIR(os.lstat(probe).st_mode):
            raise CopyError(f"{self.shown(probe)} is not a directory")
        uid, gid = owner or self.ownership.owner or (0, 0)
        for directory in reversed(missing):
            os.mkdir(directory, 0o755)
            os.chown(directory, uid, gid)
            os.chmod(directory, 0o755)
        return host

    def place(self, source: Source, destination: str, *, into_dir: bool) -> None:
        """Copy ``source`` to ``destination`` (absolute in the root).

        A directory's contents go into ``destination``; a file goes into it when
        ``into_dir`` (a trailing ``/``, several sources) or when it is an existing
        directory, and is named ``destination`` otherwise.
        """
        if source.archive:
            self.extract(source.entries[0].host, destination)
            return
        top = source.entries[0]
        if source.is_dir:
            existed = os.path.isdir(self.inside(destination))
            host = self.ensure_dir(destination)
            if not existed and self.ownership.keep:
                self._apply(host, top, self.ownership)  # an image's directory comes with its metadata
            elif not existed and self.ownership.mode is not None:
                os.chmod(host, self.ownership.mode)  # a context directory's host mode is not the image's
            for entry in source.entries[1:]:
                self._put(os.path.join(host, entry.rel), entry, self.ownership)
            return
        if into_dir or os.path.isdir(self.inside(destination)):
            parent, name = self.ensure_dir(destination), source.name
        else:
            parent, name = self.ensure_dir(posixpath.dirname(destination)), posixpath.basename(destination)
        self._put(os.path.join(parent, name), top, self.ownership)

    def _clear(self, host: str, *, for_dir: bool) -> bool:
        """Make room at ``host``; True when a real directory is there and stays (merged into)."""
        try:
            st = os.lstat(host)
        except FileNotFoundError:
            return False
        if stat.S_ISDIR(st.st_mode):
            if for_dir:
                return True
            raise CopyError(f"cannot replace directory {self.shown(host)} with a file")
        os.unlink(host)
        return False

    def _put(self, host: str, entry: Entry, ownership: Ownership) -> None:
        kept = self._clear(host, for_dir=entry.kind == "dir")
        if entry.kind == "dir":
            if not kept:
                os.mkdir(host, 0o700)
            self._apply(host, entry, ownership)
        elif entry.kind == "file":
            with open(entry.host, "rb") as reader:
                self._write(host, reader, entry, ownership)
        elif entry.kind == "symlink":
            os.symlink(entry.link, host)
            os.chown(host, *ownership.ids(entry), follow_symlinks=False)
            os.utime(host, ns=(entry.mtime_ns, entry.mtime_ns), follow_symlinks=False)
        else:
            kind = {"fifo": stat.S_IFIFO, "chr": stat.S_IFCHR, "blk": stat.S_IFBLK}[entry.kind]
            os.mknod(host, kind | 0o600, entry.rdev)
            self._apply(host, entry, ownership)

    def _apply(self, host: str, entry: Entry, ownership: Ownership) -> None:
        """Owner, then mode (chown clears set-id bits), then time (for directories, at the end)."""
        os.chown(host, *ownership.ids(entry), follow_symlinks=False)
        os.chmod(host, ownership.mode if ownership.mode is not None else entry.mode)
        if entry.kind == "dir":
            self._times.append((host, entry.mtime_ns))
        else:
            os.utime(host, ns=(entry.mtime_ns, entry.mtime_ns), follow_symlinks=False)

    @staticmethod
    def _write(host: str, reader: typing.IO[bytes], entry: Entry, ownership: Ownership) -> None:
        """A new regular file at ``host`` (never through a symlink) with ``reader``'s bytes."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        with open(os.open(host, flags, 0o600), "wb") as writer:
            shutil.copyfileobj(reader, writer, _CHUNK)
            writer.flush()
            fd = writer.fileno()
            os.fchown(fd, *ownership.ids(entry))
            os.fchmod(fd, ownership.mode if ownership.mode is not None else entry.mode)
            os.utime(fd, ns=(entry.mtime_ns, entry.mtime_ns))

    def finish(self) -> None:
        """Directory times, deepest first, now that nothing more is created inside them."""
        for host, mtime_ns in reversed(self._times):
            os.utime(host, ns=(mtime_ns, mtime_ns), follow_symlinks=False)
        self._times.clear()

    # --- ADD: local tar archives ----------------------------------------------

    def extract(self, archive: str, destination: str) -> None:
        """Unpack a (compressed) tar into ``destination``, as ADD does with a local archive.

        Members keep their owners (unless --chown), modes and times. Names are relative
        to ``destination`` and may not climb out of it; a member below a symlink goes
        where that symlink leads inside the root, as extracting inside the container
        would, never outside it.
        """
        base = self.shown(self.ensure_dir(destination))
        members = Ownership(self.ownership.owner, keep=True)
        try:
            with open_archive(archive) as stream, tarfile.open(fileobj=stream, mode="r|") as tar:
                for member in tar:
                    self._member(tar, member, base, members)
                    tar.members.clear()  # type: ignore[attr-defined]  # stream mode keeps every header otherwise
        except (OSError, EOFError, tarfile.TarError, lzma.LZMAError, zstandard.ZstdError) as exc:
            raise CopyError(f"cannot extract {os.path.basename(archive)}: {exc}") from None

    def _member(self, tar: tarfile.TarFile, member: tarfile.TarInfo, base: str, ownership: Ownership) -> None:
        parts = _member_parts(member.name)
        if parts is None:
            raise CopyError(f"archive member {member.name!r} leads outside the destination")
        if not parts:
            return  # the archive's "./" itself
        host = os.path.join(self.ensure_dir(posixpath.join(base, *parts[:-1])), parts[-1])
        kind = _MEMBER_KINDS.get(member.type, "")
        if member.islnk():
            self._hardlink(member, base, host)
            return
        if not kind:
            raise CopyError(f"archive member {member.name!r} has an unsupported type {member.type!r}")
        entry = Entry(
            rel=member.name,
            host="",
            kind=kind,
            mode=stat.S_IMODE(member.mode),
            uid=member.uid,
            gid=member.gid,
            size=member.size,
            mtime_ns=int(member.mtime * 1_000_000_000),
            link=member.linkname if kind == "symlink" else "",
            rdev=os.makedev(member.devmajor, member.devminor) if kind in ("chr", "blk") else 0,
        )
        if kind != "file":
            self._put(host, entry, ownership)
            return
        reader = tar.extractfile(member)
        if reader is None:
            raise CopyError(f"archive member {member.name!r} has no data")
        self._clear(host, for_dir=False)
        with reader:
            self._write(host, reader, entry, ownership)

    def _hardlink(self, member: tarfile.TarInfo, base: str, host: str) -> None:
        parts = _member_parts(member.linkname)
        if not parts:
            raise CopyError(f"archive member {member.name!r} links outside the destination")
        target = os.path.join(self.inside(posixpath.join(base, *parts[:-1])), parts[-1])
        found = os.lstat(target) if os.path.lexists(target) else None
        if found is None or stat.S_ISDIR(found.st_mode):
            raise CopyError(f"archive member {member.name!r} links to {member.linkname!r}, not an earlier file")
        self._clear(host, for_dir=False)
        os.link(target, host, follow_symlinks=False)


_MEMBER_KINDS = {
    tarfile.DIRTYPE: "dir",
    tarfile.REGTYPE: "file",
    tarfile.AREGTYPE: "file",
    tarfile.CONTTYPE: "file",
    tarfile.SYMTYPE: "symlink",
    tarfile.FIFOTYPE: "fifo",
    tarfile.CHRTYPE: "chr",
    tarfile.BLKTYPE: "blk",
}


def _member_parts(name: str) -> list[str] | None:
    """An archive name's components (leading ``/`` dropped, ``..`` resolved); None if it climbs out."""
    return components(name, confined=True)


def make_workdir(root: str, path: str, owner: tuple[int, int]) -> None:
    """WORKDIR: create ``path`` (and its parents) if missing, owned by the image's USER."""
    Writer(root, Ownership(owner)).ensure_dir(path, owner=owner)
