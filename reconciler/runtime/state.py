"""Container state on disk: ``ROOT/containers/NAME/state.json``, written atomically.

Nothing about a container lives only in memory: the engine, the monitor and any
later engine process read and write the same file, so a container is found again
(running, exited, or gone) from the state directory and the kernel alone.
"""

from __future__ import annotations

import contextlib
import json
import marshal
import os
import shutil
import time
from typing import Any, Literal

Status = Literal["created", "running", "paused", "exited"]


def new_id() -> str:
    """A container's ID: 64 hex characters, random as Docker's (its short form is the
    first 12). Made once, at ``reserve``, and never changed."""
    return os.urandom(32).hex()


def legacy_id(name: str) -> str:
    """The ID of a container recorded before containers had one: sha256 of its name.
    Stable, so it is the same whether or not a later write records it, and it is the
    ID the Docker API has been answering for such containers all along."""
    import hashlib  # only states written before IDs existed pay for it

    return hashlib.sha256(name.encode()).hexdigest()


class ContainerState:
    """One container's record. A plain class (not a dataclass, whose import and
    class construction cost ``reconcile run`` about 10 ms); ``vars()`` is its JSON."""

    def __init__(
        self,
        name: str,
        status: Status = "created",
        pid: int = 0,  # the container's pid 1 as the host sees it
        pid_start: int = 0,  # its start time in clock ticks: tells a reused pid apart
        monitor_pid: int = 0,
        exit_code: int | None = None,
        oom_killed: bool = False,
        error: str | None = None,
        created_at: float | None = None,
        started_at: float | None = None,
        finished_at: float | None = None,
        spec: dict[str, Any] | None = None,
        restart_count: int = 0,
        stopped_by_user: bool = False,
        id: str = "",
        cgroup: str = "",
    ) -> None:
        self.name = name
        #: 64 hex characters, unique per host in practice: what an ID prefix resolves
        #: against, and what everything the container has outside the root is named by.
        self.id = id or legacy_id(name)
        #: The cgroup (below the runtime's parent) its current or last process runs in:
        #: its ID, or its name for a container started before IDs existed (found again
        #: where it is until it starts anew).
        self.cgroup = cgroup or name
        self.status: Status = status
        self.pid = pid
        self.pid_start = pid_start
        self.monitor_pid = monitor_pid
        self.exit_code = exit_code
        self.oom_killed = oom_killed
        self.error = error
        self.created_at: float = time.time() if created_at is None else created_at
        self.started_at = started_at
        self.finished_at = finished_at
        self.spec: dict[str, Any] = {} if spec is None else spec
        #: Times it was started again after exiting (restart policies' backoff counts them).
        self.restart_count = restart_count
        #: ``stop`` said so: no restart policy brings it back.
        self.stopped_by_user = stopped_by_user

    def __repr__(self) -> str:
        status, code = self.status, self.exit_code
        return f"ContainerState({self.name!r}, {self.id[:12]}, status={status!r}, pid={self.pid}, exit_code={code})"


def process_start(pid: int) -> int:
    """Field 22 of /proc/PID/stat, or 0 when the process is gone (a zombie is gone too:
    it has exited and only waits to be reaped). Read with ``os.open``/``os.read``:
    a text file object costs twice as much, and listing containers asks this of each."""
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return 0
    try:
        data = os.read(fd, 4096)  # a stat line is a few hundred bytes (comm is at most 16)
    except OSError:
        return 0
    finally:
        os.close(fd)
    try:
        fields = data.rsplit(b")", 1)[1].split()
        return 0 if fields[0] in (b"Z", b"X") else int(fields[19])
    except IndexError:
        return 0


#: A state file written less than this long ago is parsed but not cached: file
#: times come from a coarse clock (a few ms) and a freed inode is soon reused, so two
#: writes in one tick could share (inode, mtime, size) with different contents. One
#: written earlier than the read by more than a tick cannot be confused with a later one.
FRESH_NS = 50_000_000


class StateStore:
    """``ROOT/containers/NAME/state.json`` of every container.

    Reads are cached per store: the parsed document of each state, keyed by its
    file's ``(st_ino, st_mtime_ns, st_size)``. Every write renames a new file into
    place (a new inode), from this process or any other (the monitor), so a read
    stats the file and uses the cache only when the key is the same; a listing of
    unchanged states costs a ``stat`` and a copy each instead of a parse. The cache
    holds the document marshalled, and every read builds a new ``ContainerState``
    from it: a caller may mutate and write what it was given without the change
    showing in anybody else's read before it is written."""

    def __init__(self, root: str) -> None:
        self.directory = os.path.join(root, "containers")
        #: name → (key of the file, marshal of its document)
        self._cache: dict[str, tuple[tuple[int, int, int], bytes]] = {}

    def path(self, name: str, *parts: str) -> str:
        return os.path.join(self.directory, name, *parts)

    def write(self, state: ContainerState, *, create: bool = True) -> bool:
        """Write to a temporary file and rename it: a reader never sees half a state.
        ``create=False``: an update only, never bringing back a container removed
        meanwhile (a listing's correction, a monitor's exit): False, nothing written.

        No fsync: a state only has to survive the death of processes (the page cache
        keeps it), and after a power loss every container is gone anyway and
        ``inspect`` says so. ext4 (auto_da_alloc) also flushes a file replaced by
        rename before the rename commits. Skipping it saves 1-5 ms per write, three
        writes per ``run``."""
        if create:
            os.makedirs(self.path(state.name), exist_ok=True)
        target = self.path(state.name, "state.json")
        temporary = f"{target}.{os.getpid()}.tmp"
        try:
            with open(temporary, "w") as handle:
                json.dump(vars(state), handle)
        except FileNotFoundError:
            if create:
                raise
            return False  # removed meanwhile (its directory retired): it stays removed
        os.replace(temporary, target)
        return True

    def read(self, name: str) -> ContainerState | None:
        """A new object every time, the caller's to change and ``write``."""
        document = self._document(name, self.path(name, "state.json"))
        return None if document is None else ContainerState(**document)

    def read_all(self) -> list[ContainerState]:
        """Every container's state, by name (those removed meanwhile left out)."""
        try:
            names = sorted(os.listdir(self.directory))
        except FileNotFoundError:
            names = []
        for gone in self._cache.keys() - set(names):
            self._cache.pop(gone, None)
        states = []
        for name in names:  # names from listdir: no slashes, a plain join is the same path
            if name.startswith("."):  # retired: being deleted (or left by a process killed doing it)
                self._sweep(name)
                continue
            document = self._document(name, f"{self.directory}/{name}/state.json")
            if document is not None:
                states.append(ContainerState(**document))
        return states

    def _document(self, name: str, path: str) -> dict[str, Any] | None:
        """``name``'s state (at ``path``) as parsed JSON, a fresh copy; None when it has none."""
        try:
            info = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            self._cache.pop(name, None)
            return None
        cached = self._cache.get(name)
        if cached is not None and cached[0] == (info.st_ino, info.st_mtime_ns, info.st_size):
            return marshal.loads(cached[1])  # type: ignore[no-any-return]
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except (FileNotFoundError, NotADirectoryError):
            self._cache.pop(name, None)
            return None
        try:
            info = os.fstat(fd)  # the key of what is read, even if renamed over since the stat
            chunks = []
            while chunk := os.read(fd, max(info.st_size, 4096)):
                chunks.append(chunk)
        finally:
            os.close(fd)
        document: dict[str, Any] = json.loads(b"".join(chunks))
        if time.time_ns() - info.st_mtime_ns > FRESH_NS:
            self._cache[name] = ((info.st_ino, info.st_mtime_ns, info.st_size), marshal.dumps(document))
        else:
            self._cache.pop(name, None)
        return document

    def keys(self) -> list[tuple[str, tuple[int, int, int]]]:
        """(name, (inode, mtime, size) of its state file) of every container, by name:
        one ``stat`` each, no read. Equal keys mean equal states (every write
        replaces the file), so a caller can keep what it derived from them."""
        try:
            names = sorted(os.listdir(self.directory))
        except FileNotFoundError:
            return []
        keys = []
        for name in names:
            if name.startswith("."):
                continue
            try:
                info = os.stat(f"{self.directory}/{name}/state.json")
            except (FileNotFoundError, NotADirectoryError):
                continue
            keys.append((name, (info.st_ino, info.st_mtime_ns, info.st_size)))
        return keys

    def names(self) -> list[str]:
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        return sorted(n for n in names if not n.startswith(".") and os.path.exists(self.path(n, "state.json")))

    def _sweep(self, retired: str) -> None:
        """Delete a retired directory that a killed process left (older than a minute;
        a younger one is being deleted right now)."""
        path = os.path.join(self.directory, retired)
        with contextlib.suppress(OSError):
            if time.time() - os.stat(path).st_ctime > 60:  # the rename set ctime
                shutil.rmtree(path, ignore_errors=True)

    def remove(self, name: str) -> None:
        self.delete_retired(self.retire(name))

    def retire(self, name: str) -> str:
        """Take ``name``'s directory out of sight in one rename (listings no longer see
        it, the name is free for a new container); the path to ``delete_retired``
        later. Its files may take milliseconds to delete, which an attached
        ``run --rm`` does after reporting the exit."""
        self._cache.pop(name, None)
        retired = os.path.join(self.directory, f".removed-{name}-{os.urandom(4).hex()}")
        try:
            os.rename(self.path(name), retired)
        except FileNotFoundError:
            return ""
        with contextlib.suppress(FileNotFoundError):  # no reader of the directory takes it for a container
            os.unlink(os.path.join(retired, "state.json"))
        return retired

    @staticmethod
    def delete_retired(path: str) -> None:
        if path:
            shutil.rmtree(path, ignore_errors=True)
