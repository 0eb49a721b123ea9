"""The no-op shortcut of ``reconcile --once``: a record of the last pass that found
nothing to do, and a check, in a few milliseconds and with the standard library
only, that nothing that pass depended on has changed since.

Why: CI and cron run ``--once`` on hosts that are almost always converged. A full
pass starts the interpreter, imports pydantic and ruamel.yaml, validates every
manifest and observes every container: 300-500 ms for 300 containers, nearly all of
it spent proving that nothing changed. The record lets that proof be a stat of
each input instead.

What a full pass's verdict depends on, and what stands for it here:

- the manifests: every file the loader reads (``manifests.files``) and the files
  outside them it read or checked (``Desired.inputs``: env files, tarballs,
  Containerfiles), each by (mtime, ctime, size, inode). ctime cannot be set back by
  hand, and state files are replaced by rename, so a new inode tells a rewrite;
- the containers: each ``state.json`` by the same stat, each running one's pid 1 by
  its start time in /proc (a container killed with its monitor leaves its state file
  as it was), and each health status read from ``health.json`` (rewritten after
  every probe, so its stat alone would say "changed" every interval);
- each of our bridges (by name), our nftables table (a digest of its listing, when
  bridges exist), ``ip_forward`` and the embedded DNS daemon (its pid file, and its process in
  /proc);
- the state database (objects, networks, leases) and its WAL (by mtime, not
  ctime: see ``_database``), the volumes
  directory and each volume's, the image references and the blob directory;
- the arguments that shape the plan and the engine's version.

The record is written only after a full pass that changed nothing, reported no
drift and left no exited container that a restart policy would start later (its
backoff makes the verdict depend on the time), and only when the fingerprint taken
before the pass observed anything equals the one taken after it: so the record
describes exactly the state that pass saw. Anything else simply falls back to a
full pass; the shortcut can be turned off with ``RECONCILE_NO_SHORTCUT=1``.
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import Any

from reconciler.manifests.files import STACK_FILE, manifest_files
from reconciler.runtime.state import process_start

#: ``network.links.BRIDGE_PREFIX`` and ``network.dns.PID_FILE``, not imported: those
#: modules import pyroute2 and dnslib.
BRIDGE_PREFIX = "rc-"
DNS_PID_FILE = "dns.pid"
IP_FORWARD = "/proc/sys/net/ipv4/ip_forward"

#: Bumped whenever what the record holds, or what a pass's verdict depends on, changes.
FORMAT = 4
RECORD = "converged.json"

Fingerprint = dict[str, Any]


def _stat(path: str) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino]


def _database(path: str) -> list[int] | None:
    """The state database and its write-ahead log by mtime, size and inode: SQLite,
    run as root, chowns the log to the database's owner on every open, which moves
    its ctime though nothing was written. An empty log is created when the database
    is opened and removed when the last connection closes: the same as none."""
    stat = _stat(path)
    return None if stat is None or (path.endswith("-wal") and stat[2] == 0) else [stat[0], stat[2], stat[3]]


def _health_status(path: str) -> str | None:
    try:
        with open(path) as handle:
            return str(json.load(handle).get("status"))
    except (OSError, ValueError, AttributeError):
        return None


def fingerprint(root: str, directory: str, inputs: list[str], key: dict[str, Any]) -> Fingerprint:
    """What a pass over ``directory`` on ``root`` depends on, as stats and statuses
    (paths made absolute: ``--once DIR`` from another working directory is the same)."""
    directory = os.path.abspath(directory)
    files = [os.path.join(directory, STACK_FILE)] + [path for path, _ in manifest_files(directory)]
    containers_dir = os.path.join(root, "containers")
    containers: dict[str, list[Any]] = {}
    with contextlib.suppress(FileNotFoundError):
        for name in sorted(os.listdir(containers_dir)):
            state = _stat(os.path.join(containers_dir, name, "state.json"))
            if state is not None:
                containers[name] = [state, _health_status(os.path.join(containers_dir, name, "health.json"))]
    volumes_dir = os.path.join(root, "volumes")
    volumes: dict[str, list[int] | None] = {"": _stat(volumes_dir)}
    with contextlib.suppress(FileNotFoundError):
        for name in sorted(os.listdir(volumes_dir)):
            volumes[name] = _stat(os.path.join(volumes_dir, name))
    images = os.path.join(root, "images")
    try:  # a bridge deleted by hand (other roots' too: that only costs a full pass)
        bridges = sorted(name for name in os.listdir("/sys/class/net") if name.startswith(BRIDGE_PREFIX))
    except OSError:
        bridges = []
    return {
        "format": FORMAT,
        "key": key,
        "files": {path: _stat(path) for path in [*files, *inputs]},
        "inputs": inputs,
        "containers": containers,
        "db": [_database(os.path.join(root, "state.db")), _database(os.path.join(root, "state.db-wal"))],
        "volumes": volumes,
        "images": [_stat(os.path.join(images, "refs.json")), _stat(os.path.join(images, "blobs", "sha256"))],
        "bridges": bridges,
        "dns": _stat(os.path.join(root, DNS_PID_FILE)),
        "firewall": _firewall(root) if bridges else None,
        "ip_forward": _read(IP_FORWARD) if bridges else None,
    }


def _read(path: str) -> str | None:
    try:
        with open(path) as handle:
            return handle.read().strip()
    except OSError:
        return None


def _firewall(root: str) -> str:
    """A digest of our nftables table as the kernel lists it (a firewall reload that
    dropped it, or a rule deleted by hand, changes it). Only looked at when bridges
    exist: it costs a process (``nft``, a few ms)."""
    import hashlib
    import subprocess

    from reconciler.network.manager import table_for

    try:
        listing = subprocess.run(
            ["nft", "-j", "list", "table", "inet", table_for(root)], capture_output=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unreadable: {exc}"
    return hashlib.sha256(listing.stdout + listing.stderr).hexdigest()


def _path(root: str) -> str:
    return os.path.join(root, RECORD)


def forget(root: str) -> None:
    """Drop the record: the next pass is a full one."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(_path(root))


def record(root: str, before: Fingerprint, after: Fingerprint, report: dict[str, Any]) -> bool:
    """Keep ``report`` (what the pass printed) for the next pass to repeat, if nothing
    moved while this pass ran and every running container can be checked by pid.
    False (and no record) otherwise."""
    if before != after:
        forget(root)
        return False
    alive: dict[str, list[int]] = {}
    for name in after["containers"]:
        try:
            with open(os.path.join(root, "containers", name, "state.json")) as handle:
                state = json.load(handle)
        except (OSError, ValueError):
            forget(root)
            return False
        if state.get("status") in ("running", "paused"):
            alive[name] = [int(state.get("pid") or 0), int(state.get("pid_start") or 0)]
    with contextlib.suppress(OSError, ValueError):  # the embedded DNS daemon, when one runs
        with open(os.path.join(root, DNS_PID_FILE)) as handle:
            pid = int(handle.read().strip())
        if process_start(pid):
            alive[DNS_PID_FILE] = [pid, process_start(pid)]
    document = {"fingerprint": after, "alive": alive, "report": report}
    temporary = f"{_path(root)}.{os.getpid()}.tmp"
    with open(temporary, "w") as handle:
        json.dump(document, handle)
    os.replace(temporary, _path(root))
    return True


def still_converged(root: str, directory: str, key: dict[str, Any]) -> dict[str, Any] | None:
    """The recorded report when nothing the recorded pass depended on has changed
    (the host is as converged as it was then); None when a full pass must decide."""
    if os.environ.get("RECONCILE_NO_SHORTCUT"):
        return None
    try:
        with open(_path(root)) as handle:
            document = json.load(handle)
        recorded: Fingerprint = document["fingerprint"]
        if recorded.get("format") != FORMAT or recorded.get("key") != key:
            return None
        # a container whose pid 1 is gone (or is another process now) has changed
        # even if its state file has not: its monitor may have died with it
        for pid, start in document["alive"].values():
            if process_start(pid) != start:
                return None
        if fingerprint(root, directory, recorded["inputs"], key) != recorded:
            return None
        report: dict[str, Any] = document["report"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return report
