"""``reconcile agent``: the daemon. Serves the engine API on a UNIX socket (and
optionally TCP with mTLS) and, given a manifests directory, also keeps the host
matching it (the reconcile loop of ``control.agent``, in a thread of its own).

Without a directory it is a plain daemon, like dockerd: every resource is served,
nothing is reconciled. SIGTERM or SIGINT: stop listening, cut the streams in flight
(their clients get a clean error), let the current pass finish, exit 0. Containers
keep running, and the next agent finds them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiohttp import web

from reconciler.api import hijack, listen
from reconciler.api.server import build_app
from reconciler.exitcodes import EXIT_FAILED, EXIT_OK

log = logging.getLogger("reconcile.api")

#: Seconds in-flight requests get to finish when the agent stops; streams (logs -f,
#: attached runs) are cut after it.
SHUTDOWN_GRACE = 1.0


class _JSONLines(logging.Formatter):
    # one line per record: logging's handler writes it with its own lock, and the
    # loop's lines go through control.agent.log's; each is one write call
    """The agent logs one JSON object per line on stderr, as the reconcile loop does."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created)),
            "event": "api",
            "level": record.levelname.lower(),
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def _log_event(event: str, **fields: object) -> None:
    from reconciler.control.agent import log as write_line

    write_line(event, **fields)


def run(args: argparse.Namespace) -> int:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JSONLines())
    logging.getLogger("reconcile").addHandler(handler)
    logging.getLogger("reconcile").setLevel(logging.INFO)
    from reconciler.engine.core import Engine
    from reconciler.engine.wiring import EngineConfig

    tls = None
    try:
        if args.tcp:  # checked before anything is made: a refused start leaves nothing behind
            cert, key, ca = (getattr(args, f"tls_{name}", None) for name in ("cert", "key", "ca"))
            if cert and key and ca:
                tls = listen.server_tls(cert=cert, key=key, ca=ca)
            elif not args.insecure_tcp:
                raise listen.ListenError(
                    "--tcp needs --tls-cert, --tls-key and --tls-ca (clients must present a certificate signed by the "
                    "CA); --insecure-tcp serves plain TCP, which gives root on this host to anyone who can connect"
                )
            else:
                _log_event(
                    "warning", message=f"serving the API on plain TCP {args.tcp}: anyone who can connect is root"
                )
        lock = listen.agent_lock(args.root)
    except listen.ListenError as exc:
        print(f"reconcile agent: {exc}", file=sys.stderr)
        return EXIT_FAILED
    unix = tcp = docker = None
    docker_path = docker_socket_path(args)
    try:
        unix = listen.unix_socket(args.socket, group=args.group)
        tcp = listen.tcp_socket(args.tcp) if args.tcp else None
        docker = listen.unix_socket(docker_path, group=args.group) if docker_path else None
    except listen.ListenError as exc:
        print(f"reconcile agent: {exc}", file=sys.stderr)
        if unix is not None:
            listen.remove_socket(args.socket, unix)
        if tcp is not None:
            tcp.close()
        lock.close()
        return EXIT_FAILED
    engine = Engine(EngineConfig(args.root, args.cgroup_parent, unpack_after_pull=True))
    engine.host = f"unix://{args.socket}"
    try:
        asyncio.run(_serve(args, engine, unix, tcp, tls, docker))
    finally:
        engine.close()
        listen.remove_socket(args.socket, unix)
        if docker is not None and docker_path:
            listen.remove_socket(docker_path, docker)
        lock.close()
    return EXIT_OK


def docker_socket_path(args: argparse.Namespace) -> str | None:
    """Where the Docker API listens: ``--docker-socket``, else ``$RECONCILE_DOCKER_SOCKET``,
    else ``docker.sock`` beside the native socket (``/run/reconcile/docker.sock`` by
    default; an agent on a socket of its own gets a Docker socket of its own too);
    None with ``--no-docker-socket``."""
    value = getattr(args, "docker_socket", None)
    if value == "":
        return None
    if value:
        return str(value)
    return os.environ.get("RECONCILE_DOCKER_SOCKET") or os.path.join(
        os.path.dirname(os.path.abspath(args.socket)), "docker.sock"
    )


async def _serve(args: argparse.Namespace, engine: Any, unix: Any, tcp: Any, tls: Any, docker: Any = None) -> None:
    from reconciler.api.server import MAX_WORKERS, METRICS

    executor = ThreadPoolExecutor(max_workers=MAX_WORKERS, thread_name_prefix="api")
    app = build_app(engine, max_body=args.max_body, executor=executor)
    runner = hijack.Runner(app, access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_GRACE)
    await runner.setup()
    await web.SockSite(runner, unix).start()
    if tcp is not None:
        await web.SockSite(runner, tcp, ssl_context=tls).start()
    docker_runner: hijack.Runner | None = None
    if docker is not None:  # the Docker API: same loop, same thread pool
        from reconciler.dockerapi.app import build_docker_app

        docker_runner = hijack.Runner(
            build_docker_app(engine, executor), access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_GRACE
        )
        await docker_runner.setup()
        await web.SockSite(docker_runner, docker).start()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()

    def request_stop(sig: signal.Signals) -> None:
        _log_event("stopping", signal=sig.name)
        stopping.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, request_stop, sig)
    stop_loop = threading.Event()
    reconciler: threading.Thread | None = None
    if args.directory:
        from reconciler.control import agent as host_agent

        reconciler = threading.Thread(
            target=host_agent.serve,
            args=(args, stop_loop),
            kwargs={"engine": engine, "on_pass": app[METRICS].observe_pass},
            name="reconcile-loop",
            daemon=True,
        )
        reconciler.start()
    _log_event(
        "listening",
        socket=args.socket,
        docker_socket=docker_socket_path(args),
        tcp=args.tcp,
        tls=tls is not None,
        directory=args.directory,
        root=args.root,
    )
    await stopping.wait()
    stop_loop.set()
    if docker_runner is not None:
        await docker_runner.cleanup()
    await runner.cleanup()
    if reconciler is not None:
        await asyncio.to_thread(reconciler.join)
    _log_event("stopped")
