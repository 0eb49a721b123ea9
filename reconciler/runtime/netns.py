"""Network namespace handles: a namespace kept alive by a bind mount of its nsfs file.

A container's network namespace is made before its process, at
``ROOT/containers/NAME/netns``, so the network layer can put a veth into it and
address it before anything runs (as CNI plugins get a netns path). The container
then joins it instead of making its own. The handle is the only mount a
container leaves in the host's mount namespace, so ``remove`` is part of every
cleanup, and a missing or never-mounted handle is fine there.
"""

from __future__ import annotations

import contextlib
import errno
import os

from reconciler.runtime import linux


class NetnsError(Exception):
    pass


def create(path: str) -> None:
    """A new network namespace held at ``path`` (a file that must not exist yet),
    with its loopback interface up.

    A forked child unshares and bind-mounts its namespace, so this process keeps
    its own network namespace."""
    with open(path, "x"):
        pass  # the mount point
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child; its effect is tested
        os.close(read_end)
        try:
            linux.unshare(linux.CLONE_NEWNET)
            linux.loopback_up()
            linux.mount("/proc/self/ns/net", path, None, linux.MS_BIND)
        except BaseException as exc:
            with contextlib.suppress(OSError):
                os.write(write_end, str(exc).encode())
            os._exit(1)
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as handle:
        error = handle.read().decode(errors="replace")
    _, status = os.waitpid(pid, 0)
    if status != 0:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        raise NetnsError(f"cannot create a network namespace at {path}: {error or 'the helper process failed'}")


def is_handle(path: str) -> bool:
    """True when ``path`` holds a namespace (an nsfs mount), not just the empty file."""
    try:
        return os.stat(path).st_dev != os.stat(os.path.dirname(path) or ".").st_dev
    except FileNotFoundError:
        return False


def remove(path: str) -> None:
    """Unmount and delete the handle; the namespace goes when nothing else uses it.
    Idempotent."""
    try:
        linux.umount2(path, linux.MNT_DETACH)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOENT):  # not mounted, or gone
            raise NetnsError(f"cannot unmount network namespace {path}: {exc.strerror}") from None
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
