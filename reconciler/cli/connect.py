"""Which engine a command talks to, decided here once for every command.

In order: ``--host`` (``-H``), then ``$RECONCILE_HOST``, then ``--context NAME`` or
the current context (``reconcile context use``), then the default socket
(``$RECONCILE_SOCKET``, ``/run/reconcile/reconcile.sock``) if an agent listens
there, then the in-process engine (the embedded default: no agent needed).

The default socket is tried only for commands on the default root: an agent serves
its own root, so ``--root /elsewhere`` (or ``$RECONCILE_ROOT``) means this process
works on that root itself.

The remote path imports the standard library and ``reconciler.client`` only.
"""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from reconciler.client.transport import TLSFiles
    from reconciler.engine.models.engine import EngineAPI

DEFAULT_ROOT = "/var/lib/reconcile"
DEFAULT_SOCKET = "/run/reconcile/reconcile.sock"


class Target:
    """Where the engine is: ``host`` None means in-process."""

    def __init__(self, host: str | None, tls: TLSFiles | None = None, via: str = "local") -> None:
        self.host, self.tls, self.via = host, tls, via


def resolve(args: argparse.Namespace) -> Target:
    host = getattr(args, "host", None)
    if host:
        return Target(host, _tls_flags(args), via="--host")
    host = os.environ.get("RECONCILE_HOST")
    if host:
        return Target(host, _tls_flags(args), via="RECONCILE_HOST")
    name = getattr(args, "context", None) or os.environ.get("RECONCILE_CONTEXT")
    if name is None and not _contexts_file_exists():
        return _default_socket_or_local(args)  # no context anywhere: nothing to read
    from reconciler.client import contexts

    try:
        name = name or contexts.current()
        context = contexts.get(name)
    except contexts.ContextError as exc:
        from reconciler.engine.errors import InvalidRequest

        raise InvalidRequest(str(exc)) from None
    if context.get("host"):
        tls = context.get("tls")
        files = None
        if tls:
            from reconciler.client.transport import TLSFiles

            files = TLSFiles(tls["ca"], tls["cert"], tls["key"])
        return Target(context["host"], files, via=f"context {name}")
    return _default_socket_or_local(args)


def _contexts_file_exists() -> bool:
    from reconciler.client import contexts

    return os.path.exists(contexts.path())


def _default_socket_or_local(args: argparse.Namespace) -> Target:
    if os.path.abspath(getattr(args, "root", DEFAULT_ROOT)) == DEFAULT_ROOT:
        path = os.environ.get("RECONCILE_SOCKET", DEFAULT_SOCKET)
        if _listening(path):
            return Target(f"unix://{path}", via="default socket")
    return Target(None)


def _tls_flags(args: argparse.Namespace) -> TLSFiles | None:
    files = [getattr(args, f"tls_{key}", None) for key in ("ca", "cert", "key")]
    if not any(files):
        return None
    from reconciler.client.transport import TLSFiles
    from reconciler.engine.errors import InvalidRequest

    if not all(files):
        raise InvalidRequest("TLS needs --tls-ca, --tls-cert and --tls-key")
    return TLSFiles(*files)  # type: ignore[arg-type]


def _listening(path: str) -> bool:
    if not os.path.exists(path):
        return False
    import socket

    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
        return True
    except OSError:
        return False
    finally:
        probe.close()


def engine(args: argparse.Namespace) -> EngineAPI:
    """The engine for this command's arguments: an ``Engine`` in-process, or a
    ``RemoteEngine`` with the same operation groups."""
    target = resolve(args)
    if target.host is not None:
        from reconciler.client.remote import RemoteEngine

        remote: EngineAPI = RemoteEngine(target.host, tls=target.tls)
        return remote
    from reconciler.engine.core import Engine
    from reconciler.engine.wiring import EngineConfig

    local: EngineAPI = Engine(
        EngineConfig.from_environment(getattr(args, "root", None), getattr(args, "cgroup_parent", None))
    )
    return local
