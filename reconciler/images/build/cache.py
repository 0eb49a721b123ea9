"""The build cache: what each build step produced, and the hashes of context files.

Layout, under ``ROOT/images/build-cache/``::

    steps/<key hex>.json     one build step's result: its layer (or none) and history entry
    files/<context id>.json  sha256 of context files, by path, valid while their stat matches

A step's **key** is the sha256 of everything that decides its result: the state of the
image before it (a chain of the earlier keys and the layers they produced), the
instruction after variable expansion, the build arguments a RUN sees, and for
COPY/ADD a hash of the selected files' names, modes, owners, sizes and contents.
A hit re-uses the recorded layer blob, so an unchanged rebuild writes no blob and no
snapshot, and its history timestamps (recorded with the step) make the rebuilt image
byte-identical, hence the same image ID.

Every file is written to a temporary name and renamed into place, so a reader sees a
whole entry or none; an entry that does not parse (a crash, a disk full) is a miss.
Entries are never needed for correctness: deleting the directory only costs rebuilds.
Standard library only: an unchanged rebuild should cost little more than reading
these files.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
import uuid
from typing import Any

#: Bump when the meaning of a key or an entry changes: old entries then never match.
VERSION = "reconcile-build-1"

_CHUNK = 1 << 20
#: How old a file's last change must be before its hash is remembered.
_RACY_NS = 2_000_000_000


def key(*parts: object) -> str:
    """A cache key (``sha256:<hex>``) of JSON-serialisable parts; order matters."""
    data = json.dumps([VERSION, *parts], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(data.encode("utf-8", "surrogateescape")).hexdigest()


def _write_atomically(path: str, document: object) -> None:
    """Write JSON to a temporary sibling and rename it over ``path``.

    No fsync: a torn or empty entry after a crash parses as garbage, which is a miss.
    """
    os.makedirs(os.path.dirname(path), exist_ok=True)
    temporary = f"{path}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp"
    try:
        with open(temporary, "w", encoding="utf-8", errors="surrogateescape") as handle:
            json.dump(document, handle, sort_keys=True, separators=(",", ":"))
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def _read(path: str) -> Any:
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as handle:
            return json.load(handle)
    except (FileNotFoundError, NotADirectoryError, ValueError, UnicodeDecodeError):
        return None


class StepCache:
    """Step results by key: ``get`` returns the recorded dict or None, ``put`` records one."""

    def __init__(self, directory: str) -> None:
        self.directory = os.path.join(directory, "steps")

    def _path(self, step_key: str) -> str:
        return os.path.join(self.directory, step_key.removeprefix("sha256:") + ".json")

    def get(self, step_key: str) -> dict[str, Any] | None:
        found = _read(self._path(step_key))
        return found if isinstance(found, dict) else None

    def put(self, step_key: str, entry: dict[str, Any]) -> None:
        _write_atomically(self._path(step_key), entry)


class FileHashes:
    """sha256 of files, remembered by path while (size, mtime, ctime, inode) stay the same.

    Hashing a large context on every build would dominate an unchanged rebuild; a
    ``stat`` per file is what git's index does to the same end. ctime is in the
    signature too: it changes on every write even when a tool puts the mtime back.
    One file per build context, read once per build and written back only if changed.

    A file changed in the last few seconds is hashed but not remembered (git's "racy"
    entries): file times have a coarse granularity, and a same-size rewrite within
    one tick of the hashing would otherwise keep the old hash.
    """

    def __init__(self, directory: str, context_dir: str) -> None:
        context_id = hashlib.sha256(os.path.realpath(context_dir).encode("utf-8", "surrogateescape")).hexdigest()
        self.path = os.path.join(directory, "files", context_id[:32] + ".json")
        loaded = _read(self.path)
        self._entries: dict[str, list[Any]] = loaded if isinstance(loaded, dict) else {}
        self._dirty = False

    def digest(self, path: str, st: os.stat_result) -> str:
        """The ``sha256:<hex>`` of the regular file at ``path``, whose lstat is ``st``."""
        signature = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
        known = self._entries.get(path)
        if isinstance(known, list) and known[:4] == signature and len(known) == 5:
            return str(known[4])
        hasher = hashlib.sha256()
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(_CHUNK), b""):
                hasher.update(chunk)
        digest = "sha256:" + hasher.hexdigest()
        if time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) > _RACY_NS:
            self._entries[path] = [*signature, digest]
            self._dirty = True
        return digest

    def save(self) -> None:
        """Write the hashes back if any changed; entries of files now gone are dropped."""
        if not self._dirty:
            return
        self._entries = {path: entry for path, entry in self._entries.items() if os.path.lexists(path)}
        _write_atomically(self.path, self._entries)
        self._dirty = False
