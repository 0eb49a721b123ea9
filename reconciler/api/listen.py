"""Where the agent listens, and the checks before it does.

- The UNIX socket's directory must be ours and not world-writable: anyone who can
  write there could put their own socket in our place and read what clients send
  (a CLI talks to whatever answers at the path). It is made (0755) when missing.
- The socket is 0660, group ``--group`` (default: ``reconcile`` when that group
  exists, as Docker uses ``docker``; else root's), so membership grants access.
- One agent per root (``ROOT/agent.lock``, held for the agent's life) and per
  socket path (a socket that answers is never replaced; a stale one is).
- TCP requires TLS with client certificates (mTLS); plain TCP only with
  ``--insecure-tcp``, and then a warning on every start.
"""

from __future__ import annotations

import contextlib
import fcntl
import grp
import os
import socket
import ssl
import stat
from typing import IO

DEFAULT_GROUP = "reconcile"


class ListenError(Exception):
    pass


def check_directory(path: str) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, mode=0o755, exist_ok=True)
    info = os.stat(directory)
    if info.st_uid != os.geteuid():
        raise ListenError(
            f"refusing to serve on {path}: its directory {directory} is owned by uid {info.st_uid}, not by us "
            f"(uid {os.geteuid()})"
        )
    if info.st_mode & stat.S_IWOTH:
        raise ListenError(
            f"refusing to serve on {path}: its directory {directory} is world-writable; use a directory only we "
            "can write (the default is /run/reconcile)"
        )


def _group_id(group: str | None) -> int | None:
    if group is None:
        with contextlib.suppress(KeyError):
            return grp.getgrnam(DEFAULT_GROUP).gr_gid
        return None
    if group.isdigit():
        return int(group)
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise ListenError(f"no such group {group!r} (--group)") from None


def unix_socket(path: str, *, group: str | None = None, mode: int = 0o660) -> socket.socket:
    check_directory(path)
    gid = _group_id(group)
    if os.path.lexists(path):
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            raise ListenError(f"refusing to serve on {path}: it exists and is not a socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(path)
        except OSError:
            os.unlink(path)  # stale: the agent that made it is gone
        else:
            raise ListenError(f"another agent already listens on {path}")
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    previous = os.umask(0o177)  # never world-accessible, not even between bind and chmod
    try:
        sock.bind(path)
    finally:
        os.umask(previous)
    os.chmod(path, mode)
    _BOUND[path] = os.stat(path).st_ino
    if gid is not None:
        os.chown(path, -1, gid)
    sock.listen(512)
    sock.setblocking(False)
    return sock


#: The inode of each socket file this process bound, by path.
_BOUND: dict[str, int] = {}


def remove_socket(path: str, sock: socket.socket) -> None:
    """Unlink the socket file we made, unless another agent has replaced it since."""
    with contextlib.suppress(OSError):
        if os.stat(path).st_ino == _BOUND.get(path):
            os.unlink(path)
    sock.close()


def agent_lock(root: str) -> IO[str]:
    """Hold ``ROOT/agent.lock`` (the returned file) for the agent's life."""
    os.makedirs(root, exist_ok=True)
    handle = open(os.path.join(root, "agent.lock"), "a+")  # noqa: SIM115 - held until the agent exits
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise ListenError(f"another agent (pid {holder}) already serves the root {root}") from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def server_tls(*, cert: str, key: str, ca: str) -> ssl.SSLContext:
    """mTLS: our certificate, and clients must present one signed by ``ca``."""
    try:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=ca)
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ListenError(f"TLS files: {exc}") from None
    context.verify_mode = ssl.CERT_REQUIRED
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def tcp_socket(address: str) -> socket.socket:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ListenError(f"invalid TCP address {address!r}: use HOST:PORT")
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), int(port)))
    except OSError as exc:
        sock.close()
        raise ListenError(f"cannot listen on {address}: {exc.strerror}") from None
    sock.listen(512)
    sock.setblocking(False)
    return sock
