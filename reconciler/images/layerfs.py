"""Image layers on disk: unpack a layer blob into an overlayfs lower dir, and turn an
overlay upper dir back into a layer tar.

A layer is a tar stream, optionally gzip- or zstd-compressed. The store unpacks each
layer once per diff-id into a directory of its own; containers then stack those
directories as overlayfs lower dirs. Builds go the other way: the upper dir of a
build step's overlay is the step's change, and ``diff_tar`` writes it as a layer.

Why it is written the way it is:

* **Streaming.** Blobs can be gigabytes: the tar is read with ``tarfile``'s stream
  mode (``r|``) from a decompressing reader, and the diff-id (the sha256 of the
  *uncompressed* stream) is computed by a hashing reader in between, so the blob is
  read once and never held in memory.
* **Atomic.** The layer is unpacked into a sibling temporary directory
  (``<target>.tmp-<random>``) and renamed into place, so a reader of the store never
  sees a half-unpacked layer. On any error the temporary directory is removed. A
  crashed process can still leave one behind; the store's garbage collection owns
  removing stale ``*.tmp-*`` siblings.
* **Hostile input.** A layer comes from the network. Member names are normalised
  lexically and refused when they leave the root (absolute names, ``..``); every
  parent component of a path is checked with ``lstat`` and refused when it is a
  symlink (``link -> /etc`` then ``link/passwd``) or not a directory; hard links must
  point at an earlier member inside the root, and never follow a symlink. Extended
  attributes in the ``trusted.overlay.`` namespace are dropped: they steer overlayfs
  itself (redirects, metacopy, opacity) and only whiteout entries may set opacity.
* **Strict end.** ``tarfile`` treats a clean end of data, or an invalid header after
  the first member, as the end of the archive. A truncated or corrupt layer would then
  unpack "successfully" with files missing, so the block where reading stopped must be
  a real end-of-archive block (512 zero bytes).
* **Whiteouts.** The OCI (AUFS-style) ``.wh.<name>`` entries become what overlayfs
  understands: a character device 0/0 named ``<name>``; ``.wh..wh..opq`` becomes the
  ``trusted.overlay.opaque=y`` xattr on its directory. ``diff_tar`` does the reverse.
* **Extended attributes** come from PAX ``SCHILY.xattr.<name>`` records. A failure to
  set one fails the layer, except ``EPERM``/``ENOTSUP`` on ``security.*`` attributes
  other than ``security.capability``: labels such as ``security.selinux`` belong to a
  host's LSM policy, and a host without that policy cannot and need not keep them. A
  file capability is part of what a binary may do, so losing one is an error.
* **Order of metadata.** Owner first, then mode (``chown`` clears setuid/setgid), then
  xattrs (``chown`` and writes clear ``security.capability``), then times. Directory
  modes and times are applied at the very end, after everything inside them was
  created, because creating an entry changes its directory's mtime.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import shutil
import stat
import tarfile
import tempfile
import typing
import zlib

import zstandard

GZIP_MAGIC = b"\x1f\x8b\x08"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
#: Other ``.wh..wh.*`` names are AUFS bookkeeping (``.wh..wh.plnk``, ``.wh..wh.aufs``), ignored.
META_PREFIX = ".wh..wh."
OPAQUE_XATTR = "trusted.overlay.opaque"
OVERLAY_XATTR_PREFIX = "trusted.overlay."
#: Upper-dir xattrs that mean the upper is not a plain change set: a renamed directory
#: (redirect_dir) or a metadata-only copy-up (metacopy). Snapshots mount with both off.
UNSUPPORTED_OVERLAY_XATTRS = ("trusted.overlay.redirect", "trusted.overlay.metacopy")
PAX_XATTR_PREFIX = "SCHILY.xattr."

_COPY_CHUNK = 1 << 20
#: What tarfile's stream reads at once (its ``bufsize``), and the gzip reader from the
#: blob. Its default, one 10 KiB record, made a 100 MiB layer about 10,000 trips
#: through the hashing and gzip readers in Python: a third of the unpack's time.
_READ_CHUNK = 1 << 20
#: How many of the last bytes read the hashing reader keeps. tarfile reads ahead at
#: most one buffer (``_READ_CHUNK``) past what it parsed, so the block where it
#: stopped is always inside this window.
_TAIL_KEEP = 2 * _READ_CHUNK + tarfile.BLOCKSIZE
_END_BLOCK = bytes(tarfile.BLOCKSIZE)
_NS = 1_000_000_000

_STREAM_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    EOFError,
    tarfile.TarError,
    zlib.error,
    zstandard.ZstdError,
)


class LayerError(Exception):
    """A layer could not be unpacked or written; the message names the layer and the cause."""


class _Refused(Exception):
    """A member the unpacker will not apply; the text completes "member 'NAME' ..."."""


def open_layer(path: str) -> typing.BinaryIO:
    """Open a layer blob for streaming its uncompressed tar.

    The compression is detected by magic bytes, not by media type: registries and
    archives mislabel layers often enough (a ``tar`` media type on a gzip blob), and
    the bytes are what must be decompressed. The caller closes the returned stream.
    """
    with open(path, "rb") as probe:
        magic = probe.read(len(ZSTD_MAGIC))
    raw = open(path, "rb")  # noqa: SIM115 - handed to the caller inside the returned stream
    if magic.startswith(GZIP_MAGIC):
        return typing.cast(typing.BinaryIO, _GzipReader(raw))
    if magic == ZSTD_MAGIC:
        # read_across_frames: a layer may be several frames (zstd:chunked writes one per file).
        reader = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True, closefd=True)
        return typing.cast(typing.BinaryIO, reader)
    return raw


class _GzipReader(io.RawIOBase):
    """A gzip stream (one or more members, as ``gzip`` and ``pigz`` write them)
    decompressed by zlib a megabyte at a time. zlib checks each member's CRC and
    length itself, in C; ``gzip.open`` does the CRC again in Python-driven 128 KiB
    steps and cost about as much as the decompression. A stream that ends inside a
    member is an EOFError, as with ``gzip``; bytes after the last member that are not
    gzip are an error too."""

    def __init__(self, source: typing.BinaryIO) -> None:
        super().__init__()
        self._source = source
        self._inflate = zlib.decompressobj(wbits=31)
        self._pending = b""  # compressed input not given to zlib yet

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._source.close()
        super().close()

    def read(self, size: int = -1, /) -> bytes:
        want = _READ_CHUNK if size is None or size < 0 else size
        while True:
            if self._inflate.unconsumed_tail:
                data = self._inflate.decompress(self._inflate.unconsumed_tail, want)
            else:
                compressed = self._pending or self._source.read(_READ_CHUNK)
                self._pending = b""
                if not compressed:
                    if not self._inflate.eof:
                        raise EOFError("compressed file ended before the end-of-stream marker was reached")
                    return b""
                if self._inflate.eof:
                    compressed = compressed.lstrip(b"\0")  # zero padding between or after members, as gzip allows
                    if not compressed:
                        continue
                    if not compressed.startswith(GZIP_MAGIC[:2]):
                        raise zlib.error("data after the end of the gzip stream is not gzip")
                    self._inflate = zlib.decompressobj(wbits=31)  # the next member
                data = self._inflate.decompress(compressed, want)
            if self._inflate.eof:
                self._pending = self._inflate.unused_data
            if data:
                return data


class _HashingReader(io.RawIOBase):
    """Passes reads through, hashing every byte and remembering the last few."""

    def __init__(self, source: typing.BinaryIO) -> None:
        super().__init__()
        self._source = source
        self._hash = hashlib.sha256()
        self._recent: list[tuple[int, bytes]] = []  # (stream offset, data) of the last reads
        self._offset = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1, /) -> bytes:
        data = self._source.read(size)
        self._hash.update(data)
        if data:
            self._recent.append((self._offset, data))
            self._offset += len(data)
            while self._recent and self._offset - (self._recent[0][0] + len(self._recent[0][1])) > _TAIL_KEEP:
                del self._recent[0]
        return data

    def block_at(self, offset: int) -> bytes:
        """The (up to) 512 bytes read at stream ``offset``; empty when none were read."""
        if self._recent and offset < self._recent[0][0]:
            raise LayerError(f"internal: block at {offset} is no longer buffered")
        block = b""
        for start, data in self._recent:
            if start + len(data) > offset and start < offset + tarfile.BLOCKSIZE:
                block += data[max(offset - start, 0) : offset + tarfile.BLOCKSIZE - start]
        return block

    def drain(self) -> None:
        """Read to the end, so the digest covers the padding after the end-of-archive blocks."""
        while self.read(_COPY_CHUNK):
            pass

    def diff_id(self) -> str:
        return "sha256:" + self._hash.hexdigest()


def _normalize(name: str) -> str | None:
    """``./a//b/`` → ``a/b``; the root is ``""``; None when the name leaves the root.

    ``..`` is resolved lexically. That is safe because the unpacker then walks the
    resulting path component by component and refuses symlinks on the way, so no
    component's meaning on disk can differ from its lexical one.
    """
    if name.startswith("/"):
        return None
    parts: list[str] = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                return None
            parts.pop()
        else:
            parts.append(part)
    return "/".join(parts)


def _lstat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def _mtime_ns(member: tarfile.TarInfo) -> int:
    mtime = member.mtime
    return mtime * _NS if isinstance(mtime, int) else round(mtime * _NS)


def _set_xattrs(target: str | int, member: tarfile.TarInfo) -> None:
    """Apply the member's ``SCHILY.xattr.*`` records to a path (not followed) or an fd."""
    for key, value in sorted(member.pax_headers.items()):
        if not key.startswith(PAX_XATTR_PREFIX):
            continue
        name = key.removeprefix(PAX_XATTR_PREFIX)
        if name.startswith(OVERLAY_XATTR_PREFIX):
            continue
        # tarfile decoded the value as UTF-8 with surrogateescape: this gives back the exact bytes.
        raw = value.encode("utf-8", "surrogateescape")
        try:
            os.setxattr(target, name, raw, follow_symlinks=isinstance(target, int))
        except OSError as exc:
            ignorable = name.startswith("security.") and name != "security.capability"
            if not (ignorable and exc.errno in (errno.EPERM, errno.ENOTSUP)):
                raise


class _Unpacker:
    """Applies tar members to a fresh directory tree, one at a time, in stream order."""

    def __init__(self, root: str) -> None:
        self.root = root
        #: Directories declared by members: relative path → (mode, mtime in ns), applied by finish().
        self.directories: dict[str, tuple[int, int]] = {}

    def _path(self, rel: str) -> str:
        return os.path.join(self.root, rel) if rel else self.root

    def apply(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        rel = _normalize(member.name)
        if rel is None:
            raise _Refused("escapes the layer root")
        parent, _, base = rel.rpartition("/")
        if base.startswith(WHITEOUT_PREFIX):
            self._whiteout(member, parent, base)
        elif member.isdir():
            self._ensure_dir(parent, create=True)
            self._directory(member, rel)
        elif not rel:
            raise _Refused("would replace the layer root with a non-directory")
        elif member.islnk():
            self._ensure_dir(parent, create=True)
            self._hardlink(member, rel)
        else:
            self._ensure_dir(parent, create=True)
            self._leaf(tar, member, rel)

    def _ensure_dir(self, rel_dir: str, *, create: bool) -> None:
        """Check that every component of ``rel_dir`` is a real directory; create missing ones if asked."""
        path = self.root
        walked: list[str] = []
        for part in rel_dir.split("/") if rel_dir else []:
            path = os.path.join(path, part)
            walked.append(part)
            found = _lstat(path)
            if found is None:
                if not create:
                    raise _Refused(f"needs {'/'.join(walked)!r}, which no earlier member created")
                os.mkdir(path)
                os.chmod(path, 0o755)  # an implicit parent, as tar(1) makes them
            elif stat.S_ISLNK(found.st_mode):
                raise _Refused(f"has a symlink {'/'.join(walked)!r} in its path")
            elif not stat.S_ISDIR(found.st_mode):
                raise _Refused(f"has a non-directory {'/'.join(walked)!r} in its path")

    def _clear(self, rel: str) -> None:
        """Remove whatever an earlier member put at ``rel``: a later entry replaces it."""
        path = self._path(rel)
        found = _lstat(path)
        if found is None:
            return
        if stat.S_ISDIR(found.st_mode):
            shutil.rmtree(path)
            prefix = rel + "/"
            for gone in [key for key in self.directories if key == rel or key.startswith(prefix)]:
                del self.directories[gone]
        else:
            os.unlink(path)

    def _whiteout(self, member: tarfile.TarInfo, parent: str, base: str) -> None:
        if base == OPAQUE_MARKER:
            self._ensure_dir(parent, create=True)
            os.setxattr(self._path(parent), OPAQUE_XATTR, b"y", follow_symlinks=False)
            return
        if base.startswith(META_PREFIX):
            return
        name = base.removeprefix(WHITEOUT_PREFIX)
        if name in ("", ".", ".."):
            raise _Refused("is a whiteout without a file name")
        self._ensure_dir(parent, create=True)
        rel = f"{parent}/{name}" if parent else name
        self._clear(rel)
        path = self._path(rel)
        os.mknod(path, stat.S_IFCHR, os.makedev(0, 0))
        os.chown(path, member.uid, member.gid, follow_symlinks=False)
        # the whiteout's time as recorded: a snapshot unpacked equals the one adopted
        os.utime(path, ns=(_mtime_ns(member), _mtime_ns(member)), follow_symlinks=False)

    def _directory(self, member: tarfile.TarInfo, rel: str) -> None:
        path = self._path(rel)
        found = _lstat(path)
        if found is None or not stat.S_ISDIR(found.st_mode):  # a directory over a directory merges
            self._clear(rel)
            os.mkdir(path, 0o700)
        os.chown(path, member.uid, member.gid, follow_symlinks=False)
        _set_xattrs(path, member)
        self.directories[rel] = (stat.S_IMODE(member.mode), _mtime_ns(member))

    def _hardlink(self, member: tarfile.TarInfo, rel: str) -> None:
        target = _normalize(member.linkname)
        if target is None:
            raise _Refused(f"links to {member.linkname!r}, which escapes the layer root")
        if not target:
            raise _Refused("links to the layer root")
        target_parent = target.rpartition("/")[0]
        self._ensure_dir(target_parent, create=False)
        found = _lstat(self._path(target))
        if found is None:
            raise _Refused(f"links to {member.linkname!r}, which is not an earlier member of this layer")
        if stat.S_ISDIR(found.st_mode):
            raise _Refused(f"links to {member.linkname!r}, which is a directory")
        if target == rel:
            return  # a link to itself: the file is already there
        self._clear(rel)
        # The link shares the target's inode and so its metadata: the header's is not applied.
        os.link(self._path(target), self._path(rel), follow_symlinks=False)

    def _leaf(self, tar: tarfile.TarFile, member: tarfile.TarInfo, rel: str) -> None:
        path = self._path(rel)
        if member.isreg():
            self._clear(rel)
            self._regular(tar, member, path)
            return
        if member.issym():
            self._clear(rel)
            os.symlink(member.linkname, path)
            os.chown(path, member.uid, member.gid, follow_symlinks=False)
            _set_xattrs(path, member)
            ns = _mtime_ns(member)
            os.utime(path, ns=(ns, ns), follow_symlinks=False)
            return
        if member.ischr() or member.isblk():
            kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
            self._clear(rel)
            os.mknod(path, kind | 0o600, os.makedev(member.devmajor, member.devminor))
        elif member.isfifo():
            self._clear(rel)
            os.mkfifo(path, 0o600)
        else:
            raise _Refused(f"has unsupported tar type {member.type!r}")
        os.chown(path, member.uid, member.gid, follow_symlinks=False)
        os.chmod(path, stat.S_IMODE(member.mode))
        _set_xattrs(path, member)
        ns = _mtime_ns(member)
        os.utime(path, ns=(ns, ns), follow_symlinks=False)

    @staticmethod
    def _regular(tar: tarfile.TarFile, member: tarfile.TarInfo, path: str) -> None:
        source = tar.extractfile(member)
        if source is None:
            raise _Refused("is a regular file without data")
        # "x": O_CREAT|O_EXCL, which also refuses to follow a symlink at the last component.
        with source, open(path, "xb") as sink:
            shutil.copyfileobj(source, sink, _COPY_CHUNK)
            if sink.tell() != member.size:
                raise _Refused(f"has {sink.tell()} bytes of data, its header says {member.size}")
            sink.flush()
            fd = sink.fileno()
            os.fchown(fd, member.uid, member.gid)
            os.fchmod(fd, stat.S_IMODE(member.mode))
            _set_xattrs(fd, member)
            ns = _mtime_ns(member)
            os.utime(fd, ns=(ns, ns))

    def finish(self) -> None:
        """Directory modes and times, now that nothing will be created inside them."""
        for rel, (mode, ns) in self.directories.items():
            path = self._path(rel)
            os.chmod(path, mode)
            os.utime(path, ns=(ns, ns), follow_symlinks=False)


def unpack(blob_path: str, target: str, *, label: str = "") -> str:
    """Unpack the layer at ``blob_path`` into the directory ``target``, which must not exist.

    The layer is unpacked into a sibling ``<target>.tmp-<random>`` and renamed into
    place, so a half-unpacked layer is never visible. Returns the diff-id
    (``sha256:<hex>`` of the uncompressed tar stream). On any error the temporary
    directory is removed and LayerError raised; ``label`` (e.g. the blob digest) names
    the layer in the message, the blob path is used without one.
    """
    what = label or blob_path
    target = os.path.normpath(target)
    if os.path.lexists(target):
        raise LayerError(f"layer {what}: target {target} already exists")
    parent, name = os.path.split(target)
    try:
        temp = tempfile.mkdtemp(prefix=f"{name}.tmp-", dir=parent or ".")
    except OSError as exc:
        raise LayerError(f"layer {what}: cannot create a directory next to {target}: {exc}") from exc
    try:
        os.chmod(temp, 0o755)  # the root of a lower dir; mkdtemp's 0700 would hide the tree
        diff_id = _unpack_into(blob_path, temp, what)
        try:
            os.rename(temp, target)
        except OSError as exc:
            raise LayerError(f"layer {what}: cannot move the unpacked layer to {target}: {exc}") from exc
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    return diff_id


def _unpack_into(blob_path: str, root: str, what: str) -> str:
    unpacker = _Unpacker(root)
    try:
        with open_layer(blob_path) as stream:
            reader = _HashingReader(stream)
            with tarfile.open(
                fileobj=reader, mode="r|", encoding="utf-8", errors="surrogateescape", bufsize=_READ_CHUNK
            ) as tar:
                while (member := tar.next()) is not None:
                    _forget_headers(tar)
                    _apply_member(unpacker, tar, member, what)
                end = tar.offset
            if reader.block_at(end) != _END_BLOCK:
                raise LayerError(f"layer {what}: the tar ends at byte {end} without an end-of-archive block")
            reader.drain()
        unpacker.finish()
    except _STREAM_ERRORS as exc:
        raise LayerError(f"layer {what}: {exc}") from exc
    return reader.diff_id()


def _forget_headers(tar: tarfile.TarFile) -> None:
    """Drop the headers TarFile keeps in ``members``.

    It appends every member it reads or writes there, even in stream mode, which would
    make memory grow with the number of files in a layer. Nothing here reads the list
    back (hard links are resolved on disk), so it is emptied after each member.
    """
    tar.members.clear()  # type: ignore[attr-defined]  # public attribute, missing from typeshed


def _apply_member(unpacker: _Unpacker, tar: tarfile.TarFile, member: tarfile.TarInfo, what: str) -> None:
    try:
        unpacker.apply(tar, member)
    except _Refused as exc:
        raise LayerError(f"layer {what} member {member.name!r} {exc}") from None
    except _STREAM_ERRORS as exc:
        raise LayerError(f"layer {what} member {member.name!r}: {exc}") from exc


# --- diff: overlay upper dir → layer tar -------------------------------------------------


class _Opaque(typing.NamedTuple):
    """The ``.wh..wh..opq`` entry of directory ``rel``, whose stat it inherits."""

    rel: str
    st: os.stat_result


class _Entry(typing.NamedTuple):
    rel: str
    st: os.stat_result


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _join(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent else name


def diff_tar(upper: str, out: typing.BinaryIO) -> None:
    """Write the overlay upper dir ``upper`` to ``out`` as an uncompressed layer tar.

    Whiteouts (character devices 0/0) become ``.wh.<name>`` entries and a directory
    with ``trusted.overlay.opaque=y`` gets a ``.wh..wh..opq`` entry. The output is a
    function of the tree alone, because builds rely on reproducible digests: entries
    in a fixed order (depth first; in each directory its opaque marker, then its
    whiteouts, then the rest, each group sorted by name bytes), numeric uid/gid with
    empty user and group names, mode and whole-second mtime from the files, no atime or
    ctime, and ``trusted.overlay.*`` xattrs left out. The upper's root directory itself
    is not an entry (its times change with every build). Sockets cannot be in a tar and
    are skipped.
    """
    try:
        root = os.lstat(upper)
        with tarfile.open(
            fileobj=out, mode="w|", format=tarfile.PAX_FORMAT, encoding="utf-8", errors="surrogateescape"
        ) as tar:
            _DiffWriter(upper, tar).run(root)
    except OSError as exc:
        raise LayerError(f"diff of {upper}: {exc}") from exc


class _DiffWriter:
    def __init__(self, upper: str, tar: tarfile.TarFile) -> None:
        self.upper = upper
        self.tar = tar
        self.links: dict[tuple[int, int], str] = {}  # (st_dev, st_ino) → first name written

    def _path(self, rel: str) -> str:
        return os.path.join(self.upper, rel) if rel else self.upper

    def run(self, root: os.stat_result) -> None:
        stack: list[_Opaque | _Entry] = list(reversed(self._contents("", root)))
        while stack:
            item = stack.pop()
            if isinstance(item, _Opaque):
                self._opaque(item)
                continue
            self._entry(item)
            if stat.S_ISDIR(item.st.st_mode):
                stack.extend(reversed(self._contents(item.rel, item.st)))

    def _xattrs(self, rel: str) -> dict[str, bytes]:
        """The entry's xattrs by sorted name, overlay's own ones checked and left out."""
        path = self._path(rel)
        result: dict[str, bytes] = {}
        for name in sorted(os.listxattr(path, follow_symlinks=False)):
            if name in UNSUPPORTED_OVERLAY_XATTRS:
                raise LayerError(f"diff of {self.upper}: {rel or '.'!r} has {name}; mount without it")
            result[name] = os.getxattr(path, name, follow_symlinks=False)
        return result

    def _contents(self, rel: str, st: os.stat_result) -> list[_Opaque | _Entry]:
        """What directory ``rel`` contributes after its own entry, in output order."""
        path = self._path(rel)
        whiteouts: list[_Opaque | _Entry] = []
        others: list[_Opaque | _Entry] = []
        for name in sorted(os.listdir(path), key=os.fsencode):
            child = _Entry(_join(rel, name), os.lstat(os.path.join(path, name)))
            (whiteouts if _is_whiteout(child.st) else others).append(child)
        opaque: list[_Opaque | _Entry] = []
        if self._xattrs(rel).get(OPAQUE_XATTR) == b"y":
            opaque.append(_Opaque(rel, st))
        return opaque + whiteouts + others

    @staticmethod
    def _header(name: str, st: os.stat_result) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.uid, info.gid = st.st_uid, st.st_gid
        info.uname = info.gname = ""
        info.mode = stat.S_IMODE(st.st_mode)
        info.mtime = st.st_mtime_ns // _NS
        return info

    def _add(self, info: tarfile.TarInfo, data: typing.BinaryIO | None = None) -> None:
        self.tar.addfile(info, data)
        _forget_headers(self.tar)

    def _opaque(self, item: _Opaque) -> None:
        info = self._header(_join(item.rel, OPAQUE_MARKER), item.st)
        info.mode &= 0o777
        self._add(info)

    def _entry(self, item: _Entry) -> None:
        rel, st = item
        mode = st.st_mode
        if stat.S_ISSOCK(mode):
            return
        if _is_whiteout(st):
            parent, _, name = rel.rpartition("/")
            info = self._header(_join(parent, WHITEOUT_PREFIX + name), st)
            info.mode = 0o600
            self._add(info)
            return
        info = self._header(rel, st)
        key = (st.st_dev, st.st_ino)
        if not stat.S_ISDIR(mode) and st.st_nlink > 1:
            if key in self.links:
                info.type = tarfile.LNKTYPE
                info.linkname = self.links[key]
                self._add(info)
                return
            self.links[key] = rel
        info.pax_headers = {
            PAX_XATTR_PREFIX + name: value.decode("utf-8", "surrogateescape")
            for name, value in self._xattrs(rel).items()
            if not name.startswith(OVERLAY_XATTR_PREFIX)
        }
        if stat.S_ISREG(mode):
            self._regular(info, rel, st)
            return
        if stat.S_ISDIR(mode):
            info.type = tarfile.DIRTYPE
        elif stat.S_ISLNK(mode):
            info.type = tarfile.SYMTYPE
            info.linkname = os.readlink(self._path(rel))
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            info.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
            info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        elif stat.S_ISFIFO(mode):
            info.type = tarfile.FIFOTYPE
        else:
            raise LayerError(f"diff of {self.upper}: {rel!r} has an unknown file type {mode:o}")
        self._add(info)

    def _regular(self, info: tarfile.TarInfo, rel: str, st: os.stat_result) -> None:
        info.type = tarfile.REGTYPE
        info.size = st.st_size
        fd = os.open(self._path(rel), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with open(fd, "rb") as data:
            self._add(info, data)
