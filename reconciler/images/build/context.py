"""What a COPY or ADD takes: its sources matched and listed, in the build context or in
another image's root filesystem.

A source is a path relative to its root, possibly with Go ``filepath.Match`` wildcards
(``*``, ``?``, ``[a-z]``, ``\\`` escapes) in any component. Each match is listed as
:class:`Entry` values: a directory's whole tree (its contents are what gets copied), or
the one file. The two roots differ in how they treat paths that lead elsewhere:

* **the build context** is the user's directory on the host. A source may not leave
  it, lexically (``../x``) or through a symlink (``link`` → ``/etc``): that is an
  error, because the host's files are not the build's to read. Symlinks *inside* a
  copied directory are copied as symlinks and never followed. Paths the
  ``.containerignore`` / ``.dockerignore`` rules exclude do not exist for the build;
* **an image root** (``COPY --from``) is a tree the build made or pulled; its symlinks
  are resolved as if that root were ``/`` (``rootfs_path.resolve``), as Docker does.

Listing the context also hashes file contents (through the cache's per-file hashes),
because the step's cache key is a function of the listing: :func:`listing_key`.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import re
import stat
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, cast

import zstandard

from reconciler.images.build.ignore import IgnoreRules
from reconciler.runtime import rootfs_path


class SourceError(Exception):
    """A source that cannot be copied: missing, excluded, or leaving its root."""


@dataclass(frozen=True)
class Entry:
    """One file of a source: ``rel`` is its path below the match ("" for the match itself)."""

    rel: str
    host: str
    kind: str  # "dir", "file", "symlink", "fifo", "chr", "blk"
    mode: int
    uid: int
    gid: int
    size: int
    mtime_ns: int
    link: str = ""
    rdev: int = 0
    digest: str = ""

    def signature(self) -> list[object]:
        """What the cache key covers: everything but the time and where it was read from."""
        return [self.rel, self.kind, self.mode, self.uid, self.gid, self.size, self.link, self.rdev, self.digest]


@dataclass(frozen=True)
class Source:
    """One matched source: ``name`` is its base name (a file copied into a directory keeps
    it); ``entries[0]`` is the match itself, a directory's tree follows in walk order."""

    rel: str
    name: str
    entries: tuple[Entry, ...]
    archive: bool = False  # ADD: a local tar archive, extracted instead of copied

    @property
    def is_dir(self) -> bool:
        return self.entries[0].kind == "dir"


_KINDS = (
    (stat.S_ISDIR, "dir"),
    (stat.S_ISREG, "file"),
    (stat.S_ISLNK, "symlink"),
    (stat.S_ISFIFO, "fifo"),
    (stat.S_ISCHR, "chr"),
    (stat.S_ISBLK, "blk"),
)


def _kind(mode: int) -> str | None:
    return next((name for test, name in _KINDS if test(mode)), None)  # sockets: None, never copied


class Root:
    """Where sources are looked up; see the module docstring for the two kinds.

    ``hasher`` (context only) gives a regular file's content digest from its path and
    lstat; without one, entries carry no digest.
    """

    def __init__(
        self,
        path: str,
        *,
        confined: bool,
        rules: IgnoreRules | None = None,
        hasher: Callable[[str, os.stat_result], str] | None = None,
        label: str = "",
    ) -> None:
        self.path = os.path.realpath(path)
        self.confined = confined
        self.rules = rules
        self.hasher = hasher
        self.label = label or ("the build context" if confined else self.path)

    # --- paths ---------------------------------------------------------------

    def _ignored(self, rel: str) -> bool:
        return self.rules is not None and bool(rel) and self.rules.ignored(rel)

    def host(self, rel: str, *, shown: str) -> tuple[str, str]:
        """(host path, path relative to the root) of ``rel``, every symlink followed.

        In the context a path that leads out is an error; in an image root symlinks
        resolve inside it.
        """
        if not self.confined:
            resolved = rootfs_path.resolve(self.path, rel)
            outside = os.path.relpath(resolved, self.path).replace(os.sep, "/")
            return resolved, "" if outside == "." else outside
        resolved = os.path.realpath(os.path.join(self.path, rel))
        if resolved != self.path and not resolved.startswith(self.path + os.sep):
            raise SourceError(f"{shown}: leads outside {self.label} (to {resolved}): copy what it points at instead")
        inside = os.path.relpath(resolved, self.path).replace(os.sep, "/")
        return resolved, "" if inside == "." else inside

    # --- matching ------------------------------------------------------------

    def match(self, pattern: str) -> list[str]:
        """The paths (relative to the root, sorted) that ``pattern`` names; errors when none."""
        parts = components(pattern, confined=self.confined)
        if parts is None:
            raise SourceError(f"{pattern}: forbidden path outside {self.label}")
        if not any(has_wildcards(part) for part in parts):
            rel = "/".join(parts)
            if self._ignored(rel):
                raise SourceError(f"{pattern}: excluded by the ignore file (.containerignore / .dockerignore)")
            host, _ = self.host(rel, shown=pattern)
            if not os.path.lexists(host):
                raise SourceError(f"{pattern}: no such file or directory in {self.label}")
            return [rel]
        found = [rel for rel in self._expand("", parts, pattern) if not self._ignored(rel)]
        if not found:
            raise SourceError(f"{pattern}: no file in {self.label} matches")
        return sorted(found)

    def _expand(self, prefix: str, parts: list[str], pattern: str) -> Iterator[str]:
        if not parts:
            yield prefix
            return
        head, rest = parts[0], parts[1:]
        if not has_wildcards(head):
            joined = f"{prefix}/{head}" if prefix else head
            host, _ = self.host(joined, shown=pattern)
            if os.path.lexists(host):
                yield from self._expand(joined, rest, pattern)
            return
        directory, _ = self.host(prefix, shown=pattern)
        try:
            names = sorted(os.listdir(directory))
        except (NotADirectoryError, FileNotFoundError):
            return
        regex = translate(head)
        for name in names:
            joined = f"{prefix}/{name}" if prefix else name
            if regex.fullmatch(name) and not self._ignored(joined):
                yield from self._expand(joined, rest, pattern)

    # --- listing -------------------------------------------------------------

    def source(self, rel: str, *, shown: str, archives: bool = False) -> Source:
        """The match at ``rel`` listed: a symlink named as the source is followed.

        ``archives`` (ADD) marks a regular file that is a tar archive for extraction.
        """
        host, inside = self.host(rel, shown=shown)
        try:
            st = os.lstat(host)
        except FileNotFoundError:
            raise SourceError(f"{shown}: {rel or '.'} points at a file that does not exist") from None
        if self._ignored(inside):
            raise SourceError(f"{shown}: excluded by the ignore file (.containerignore / .dockerignore)")
        top = self._entry("", host, st)
        if top is None:
            raise SourceError(f"{shown}: {rel} is a socket, which cannot be copied")
        name = os.path.basename(rel) or os.path.basename(host)
        if top.kind != "dir":
            return Source(rel, name, (top,), archive=archives and top.kind == "file" and is_archive(host))
        return Source(rel, name, (top, *self._walk(host, inside, "")))

    def _walk(self, directory: str, inside: str, rel_dir: str) -> Iterator[Entry]:
        """Directory contents depth first, sorted, ignored paths left out."""
        with os.scandir(directory) as scan:
            items = sorted(scan, key=lambda item: item.name)
        for item in items:
            rel = f"{rel_dir}/{item.name}" if rel_dir else item.name
            in_root = f"{inside}/{rel}" if inside else rel
            st = item.stat(follow_symlinks=False)
            ignored = self._ignored(in_root)
            if ignored and not (stat.S_ISDIR(st.st_mode) and self.rules and self.rules.may_contain_kept(in_root)):
                continue
            entry = self._entry(rel, item.path, st)
            if entry is None:
                continue
            if entry.kind == "dir":
                below = list(self._walk(item.path, inside, rel))
                if ignored and not below:
                    continue  # an ignored directory kept only for what it holds, and it holds nothing kept
                yield entry
                yield from below
            elif not ignored:
                yield entry

    def _entry(self, rel: str, host: str, st: os.stat_result) -> Entry | None:
        kind = _kind(st.st_mode)
        if kind is None:
            return None
        link = os.readlink(host) if kind == "symlink" else ""
        digest = self.hasher(host, st) if kind == "file" and self.hasher is not None else ""
        return Entry(
            rel=rel,
            host=host,
            kind=kind,
            mode=stat.S_IMODE(st.st_mode),
            uid=st.st_uid,
            gid=st.st_gid,
            size=st.st_size if kind == "file" else 0,
            mtime_ns=st.st_mtime_ns,
            link=link,
            rdev=st.st_rdev if kind in ("chr", "blk") else 0,
            digest=digest,
        )


def listing_key(sources: list[Source]) -> list[object]:
    """The part of a COPY/ADD cache key that stands for the files it copies."""
    return [[source.rel, source.archive, [entry.signature() for entry in source.entries]] for source in sources]


def components(pattern: str, *, confined: bool) -> list[str] | None:
    """The path's components, ``.`` and ``..`` resolved lexically; None when ``..`` leaves
    a confined root (an image root clamps at its ``/``, as a path lookup would)."""
    parts: list[str] = []
    for part in pattern.split("/"):
        if part in ("", "."):
            continue
        if part != "..":
            parts.append(part)
        elif parts:
            parts.pop()
        elif confined:
            return None
    return parts


# --- wildcards (Go's filepath.Match, one path component at a time) ---------------


def has_wildcards(text: str) -> bool:
    """Whether a path holds an unescaped ``*``, ``?`` or ``[``."""
    escaped = False
    for character in text:
        if escaped:
            escaped = False
        elif character == "\\":
            escaped = True
        elif character in "*?[":
            return True
    return False


_CLASS = re.compile(r"\[(\^)?((?:\\.|[^\]\\])+)\]")  # Go negates with ^ only


def translate(component: str) -> re.Pattern[str]:
    """A regular expression for one path component's ``filepath.Match`` pattern."""
    out: list[str] = []
    position = 0
    while position < len(component):
        character = component[position]
        if character == "*":
            out.append("[^/]*")
        elif character == "?":
            out.append("[^/]")
        elif character == "\\" and position + 1 < len(component):
            position += 1
            out.append(re.escape(component[position]))
        elif character == "[":
            match = _CLASS.match(component, position)
            if match is None:
                raise SourceError(f"{component}: bad pattern (an unterminated character class)")
            out.append("[" + ("^" if match.group(1) else "") + _class_body(match.group(2)) + "]")
            position = match.end()
            continue
        else:
            out.append(re.escape(character))
        position += 1
    return re.compile("".join(out), re.DOTALL)


def _class_body(text: str) -> str:
    """A class's contents for Python: Go's escapes are literal characters, ``-`` makes ranges."""
    out: list[str] = []
    escaped = False
    for character in text:
        if escaped:
            out.append(re.escape(character))
            escaped = False
        elif character == "\\":
            escaped = True
        else:
            out.append(character if character == "-" else re.escape(character))
    return "".join(out)


# --- archives (ADD) -----------------------------------------------------------------


def open_archive(path: str) -> BinaryIO:
    """The file's bytes decompressed (gzip, bzip2, xz or zstd by magic, else as they are)."""
    with open(path, "rb") as probe:
        magic = probe.read(6)
    if magic.startswith(b"\x1f\x8b"):
        return cast(BinaryIO, gzip.open(path, "rb"))
    if magic.startswith(b"BZh"):
        return cast(BinaryIO, bz2.open(path, "rb"))
    if magic.startswith(b"\xfd7zXZ\x00"):
        return cast(BinaryIO, lzma.open(path, "rb"))
    raw = open(path, "rb")  # noqa: SIM115 - returned to the caller, who closes it
    if magic.startswith(b"\x28\xb5\x2f\xfd"):
        reader = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True, closefd=True)
        return cast(BinaryIO, reader)
    return raw


def is_archive(path: str) -> bool:
    """Whether ADD extracts the file: (compressed) data that begins with a valid tar header,
    as Docker decides; anything else, a gzipped text file included, is copied as it is."""
    try:
        with open_archive(path) as stream:
            block = stream.read(tarfile.BLOCKSIZE)
        tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
    except (OSError, EOFError, lzma.LZMAError, zstandard.ZstdError, tarfile.TarError, ValueError):
        return False
    return True
