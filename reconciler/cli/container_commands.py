"""``reconcile run``, ``ps``, ``logs``, ``exec``, ``stop``, ``kill``, ``rm``, ``inspect``, ``stats``, ``pause``.

Each command parses its flags into a request, asks the engine (``connect.engine``:
in-process, or an agent) and renders the answer; an ``EngineError`` is printed as
``reconcile: <message>`` and exits with its exit code, else the command's own.

The hot paths: this module and everything it imports is standard library only
(no pydantic, no ruamel), so ``reconcile run --rm IMG true`` starts fast.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from reconciler.cli import connect
from reconciler.cli import main as cli
from reconciler.engine import errors
from reconciler.engine.models.containers import ContainersAPI, ExecRequest, RunRequest, Stdio

if TYPE_CHECKING:
    from reconciler.cli import gotemplate
    from reconciler.engine.models.engine import EngineAPI

#: Docker's code for "the engine could not run it".
EXIT_ENGINE = 125


def _fail(exc: errors.EngineError, default: int) -> int:
    print(f"reconcile: {exc.message}", file=sys.stderr)
    return exc.exit_code if exc.exit_code is not None else default


@contextlib.contextmanager
def _engine(args: argparse.Namespace) -> Iterator[EngineAPI]:
    """The engine (``Engine`` or ``RemoteEngine``), closed when the command is done."""
    engine = connect.engine(args)
    try:
        yield engine
    finally:
        engine.close()


# --- run and exec ------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    """``docker run``. ``--pull missing`` (the default) pulls an image the store does
    not have, as docker's CLI does: the engine is asked to run it, and on its "no such
    image" the image is pulled (progress on stderr) and the run asked again; ``always``
    pulls first, ``never`` leaves the error as it is."""
    request = _run_request(args)
    try:
        with _engine(args) as engine:
            if args.pull == "always":
                _pull(engine, args.image, quiet=args.quiet)
            try:
                return _run(engine, request, args)
            except errors.NotFound as exc:
                if args.pull != "missing" or not _no_such_image(exc):
                    raise
            if not args.quiet:
                print(f"Unable to find image '{_familiar(args.image)}' locally", file=sys.stderr, flush=True)
            _pull(engine, args.image, quiet=args.quiet)
            return _run(engine, request, args)
    except errors.EngineError as exc:
        return _fail(exc, EXIT_ENGINE)


def _run(engine: EngineAPI, request: RunRequest, args: argparse.Namespace) -> int:
    containers: ContainersAPI = engine.containers
    if args.detach:
        print(containers.run(request, detach=True)["name"])
        return cli.EXIT_OK
    with _stdio(engine, tty=args.tty, interactive=args.interactive) as stdio:
        return containers.run(request, stdio)["exit_code"]


def _familiar(reference: str) -> str:
    """``busybox`` as docker names it in messages: ``busybox:latest``."""
    last = reference.rsplit("/", 1)[-1]
    return reference if ":" in last or "@" in last else f"{reference}:latest"


def _no_such_image(exc: errors.NotFound) -> bool:
    """The engine's NotFound for the image (not for a volume or network the run names)."""
    return exc.message.startswith("no such image")


def _pull(engine: EngineAPI, reference: str, *, quiet: bool) -> None:
    from reconciler.cli import image_commands

    image_commands.pull_with_progress(engine.images, reference, quiet=quiet, status=True)


def _run_request(args: argparse.Namespace) -> RunRequest:
    return {
        "image": args.image,
        "command": args.command,
        "name": args.name,
        "hostname": args.hostname,
        "env": args.env,
        "user": args.user,
        "workdir": args.workdir,
        "entrypoint": args.entrypoint,
        "read_only": args.read_only,
        "cap_add": args.cap_add,
        "cap_drop": args.cap_drop,
        "volumes": [_absolute_source(text, os.getcwd()) for text in args.volume],
        "tmpfs": args.tmpfs,
        "interactive": args.interactive,
        "tty": args.tty,
        "init": args.init,
        "stop_signal": args.stop_signal,
        "networks": args.network,
        "network_aliases": args.network_alias,
        "ip": args.ip,
        "publish": args.publish,
        "pid": args.pid,
        "ipc": args.ipc,
        "uts": args.uts,
        "memory": args.memory,
        "memory_swap": args.memory_swap,
        "cpus": args.cpus,
        "cpu_shares": args.cpu_shares,
        "cpuset_cpus": args.cpuset_cpus,
        "pids_limit": args.pids,
        "remove": args.rm,
        "labels": _labels(args.label),
    }


def _labels(texts: list[str]) -> dict[str, str]:
    """``-l KEY=VALUE`` (a bare ``KEY`` is an empty value), as docker takes them."""
    labels = {}
    for text in texts:
        key, _, value = text.partition("=")
        labels[key] = value
    return labels


def _absolute_source(text: str, cwd: str) -> str:
    """``-v ./data:/d`` (and ``.``, ``..``, ``~``) with its source made absolute here:
    the engine may be an agent with another working directory and home."""
    source, colon, rest = text.partition(":")
    if not colon:
        return text  # ``-v /path``: an anonymous volume
    if source in (".", "..") or source.startswith(("./", "../")):
        return f"{os.path.normpath(os.path.join(cwd, source))}:{rest}"
    if source.startswith("~"):
        expanded = os.path.expanduser(source)
        return text if expanded.startswith("~") else f"{os.path.normpath(expanded)}:{rest}"
    return text


def exec_(args: argparse.Namespace) -> int:
    request: ExecRequest = {"command": args.command, "interactive": args.interactive, "tty": args.tty}
    try:
        with _engine(args) as engine:
            containers: ContainersAPI = engine.containers
            with _stdio(engine, tty=args.tty, interactive=args.interactive) as stdio:
                return containers.exec(args.name, request, stdio)["exit_code"]
    except errors.EngineError as exc:
        return _fail(exc, EXIT_ENGINE)


@contextlib.contextmanager
def _stdio(engine: Any, *, tty: bool, interactive: bool) -> Iterator[Stdio]:
    """What the container's process reads and writes. With ``-t`` in-process, a pty
    relayed to our terminal; through an agent, which holds the pty, our own
    descriptors with our terminal raw. Without ``-i`` it reads nothing."""
    if tty and getattr(engine, "host", "local") == "local":
        from reconciler.cli import terminal

        with terminal.attached(interactive=interactive) as pty:
            yield Stdio(pty, pty, pty)
        return
    stdin = 0 if interactive else os.open(os.devnull, os.O_RDONLY)
    try:
        if tty:
            with _raw_terminal(enabled=interactive):
                yield Stdio(stdin, 1, 1)
        else:
            yield Stdio(stdin, 1, 2)
    finally:
        if stdin != 0:
            os.close(stdin)


@contextlib.contextmanager
def _raw_terminal(*, enabled: bool) -> Iterator[None]:
    """Our terminal raw while the block runs, so keys (^C too) reach the container's."""
    if not enabled or not os.isatty(0):
        yield
        return
    import termios
    import tty

    saved = termios.tcgetattr(0)
    tty.setraw(0, termios.TCSANOW)
    try:
        yield
    finally:
        termios.tcsetattr(0, termios.TCSADRAIN, saved)


# --- looking -------------------------------------------------------------------------


def ps(args: argparse.Namespace) -> int:
    """``docker ps``: running containers (``-a`` all), newest first, as a table, IDs
    (``-q``), a ``--format`` template or ``json`` lines; ``-o json`` is our own
    machine output (the engine's summaries as one JSON array)."""
    from reconciler.cli import container_rows

    try:
        filters = container_rows.parse_filters(args.filter)
    except ValueError as exc:
        print(f"reconcile: {exc}", file=sys.stderr)
        return cli.EXIT_USAGE
    last = 1 if args.latest else args.last
    try:
        with _engine(args) as engine:
            wanted_all = args.all or last is not None or container_rows.needs_all(filters)
            rows = engine.containers.list(all=wanted_all)
            host = engine.host
    except errors.EngineError as exc:
        return _fail(exc, cli.EXIT_FAILED)
    rows = [row for row in rows if container_rows.matches(row, filters)] if filters else rows
    newest = sorted(rows, key=lambda row: (-row["created"], row["name"]))
    if last is not None:
        kept = {id(row) for row in newest[: max(last, 0)]}
        rows, newest = [r for r in rows if id(r) in kept], newest[: max(last, 0)]
    if args.output == "json":
        print(json.dumps(rows))
        return cli.EXIT_OK
    if args.quiet:
        from reconciler.engine.container_view import summary_id

        ids = [container_rows.short_id(summary_id(row), trunc=not args.no_trunc) for row in newest]
        sys.stdout.write("".join(f"{identifier}\n" for identifier in ids))
        return cli.EXIT_OK
    template = args.format or container_rows.DEFAULT_TABLE
    if host != "local" and template.startswith("table"):  # which engine answered; on stderr, so the table stays
        print(f"host: {host}", file=sys.stderr)
    return _write_formatted(lambda: container_rows.render(template, newest, trunc=not args.no_trunc))


def _write_formatted(render: Callable[[], str]) -> int:
    """Print what a ``--format`` template renders; a template that does not parse, or
    asks for what the data does not have, is a usage error (64)."""
    from reconciler.cli import gotemplate

    try:
        text = render()
    except gotemplate.TemplateError as exc:
        print(f"reconcile: template: {exc}", file=sys.stderr)
        return cli.EXIT_USAGE
    sys.stdout.write(text)
    return cli.EXIT_OK


def logs(args: argparse.Namespace) -> int:
    try:
        since = int(float(args.since) * 1e9) if args.since else None
    except ValueError:
        print(f"reconcile: --since {args.since!r}: seconds since the epoch, such as 1700000000.5", file=sys.stderr)
        return cli.EXIT_USAGE
    try:
        with _engine(args) as engine:
            for entry in engine.containers.logs(args.name, follow=args.follow, tail=args.tail, since_ns=since):
                stream = sys.stdout if entry["stream"] == "stdout" else sys.stderr
                prefix = f"{_timestamp(entry['time_ns'])} " if args.timestamps else ""
                stream.write(prefix + entry["text"])
                stream.flush()
    except errors.EngineError as exc:
        return _fail(exc, cli.EXIT_FAILED)
    return cli.EXIT_OK


def _timestamp(ns: int) -> str:
    """RFC 3339 with nanoseconds, UTC, as ``docker logs -t`` prints it."""
    seconds, nanos = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{nanos:09d}Z"


def inspect(args: argparse.Namespace) -> int:
    """``docker inspect``: containers, then (a name no container has, or ``--type
    image``) images; each as JSON, or through ``-f/--format``'s template."""
    template = None
    if args.format:
        from reconciler.cli import gotemplate

        try:
            template = gotemplate.parse(args.format)
        except gotemplate.TemplateError as exc:
            print(f"reconcile: template parsing error: {exc}", file=sys.stderr)
            return cli.EXIT_USAGE
    found: list[dict[str, Any]] = []
    status = cli.EXIT_OK
    try:
        with _engine(args) as engine:
            for name in args.names:
                try:
                    found.append(_inspect_one(engine, name, args.type))
                except errors.EngineError as exc:
                    status = _fail(exc, cli.EXIT_FAILED)
    except errors.EngineError as exc:  # no engine to ask
        return _fail(exc, cli.EXIT_FAILED)
    if template is None:
        print(json.dumps(found, indent=2))
        return status
    return _print_templated(template, found) or status


def _inspect_one(engine: EngineAPI, name: str, kind: str | None) -> dict[str, Any]:
    if kind == "image":
        return engine.images.inspect(name)
    try:
        return engine.containers.inspect(name)
    except (errors.NotFound, errors.InvalidRequest) as exc:  # not a container's name (busybox:1)
        if kind == "container":
            raise
        missing = exc
    try:
        return engine.images.inspect(name)
    except errors.EngineError:
        raise missing from None  # no image either: the container's error says it


def _print_templated(template: gotemplate.Template, documents: list[dict[str, Any]]) -> int:
    """Each document through ``template``, one output per line (docker's ``inspect
    -f``); a document the template fails on is an error (exit 1), the others print."""
    from reconciler.cli import gotemplate

    status = cli.EXIT_OK
    for document in documents:
        try:
            print(template.execute(document))
        except gotemplate.TemplateError as exc:
            print(f"reconcile: template: {exc}", file=sys.stderr)
            status = cli.EXIT_FAILED
    return status


def stats(args: argparse.Namespace) -> int:
    """One snapshot of every running container's usage (``docker stats --no-stream``)."""
    try:
        with _engine(args) as engine:
            rows = engine.containers.stats(args.names or None)
    except errors.EngineError as exc:
        return _fail(exc, cli.EXIT_FAILED)
    if args.output == "json":
        print(json.dumps(rows))
        return cli.EXIT_OK
    print(f"{'NAME':<24} {'MEM USAGE / LIMIT':>24} {'CPU TIME':>10} {'PIDS':>5}")
    for row in rows:
        limit = row["memory_limit"]
        from reconciler.model import quantities

        memory = f"{quantities.human_size(row['memory_usage'])} / {quantities.human_size(limit) if limit else '-'}"
        print(f"{row['name']:<24} {memory:>24} {row['cpu_seconds']:>9.2f}s {row['pids']:>5}")
    return cli.EXIT_OK


# --- the lifecycle ----------------------------------------------------------------------


def stop(args: argparse.Namespace) -> int:
    try:
        with _engine(args) as engine:
            print(engine.containers.stop(args.name, grace=args.time)["name"])
    except errors.EngineError as exc:
        return _fail(exc, cli.EXIT_FAILED)
    return cli.EXIT_OK


def rm(args: argparse.Namespace) -> int:
    return _each(args, lambda containers, name: containers.remove(name, force=args.force))


def kill(args: argparse.Namespace) -> int:
    return _each(args, lambda containers, name: containers.kill(name, signal=args.signal), usage_error=True)


def pause(args: argparse.Namespace) -> int:
    return _each(args, lambda containers, name: containers.pause(name))


def unpause(args: argparse.Namespace) -> int:
    return _each(args, lambda containers, name: containers.unpause(name))


def _each(
    args: argparse.Namespace,
    action: Callable[[ContainersAPI, str], object],
    *,
    usage_error: bool = False,
    echo: bool = True,
) -> int:
    """Apply ``action`` to every name of ``args.names``, as docker does: report each
    failure, go on; print each name done (``echo``). With ``usage_error`` a refused
    request (a bad signal) is a usage error (64) that stops at once: it is the same
    for every name."""
    status = cli.EXIT_OK
    try:
        with _engine(args) as engine:
            for name in args.names:
                try:
                    action(engine.containers, name)
                    if echo:
                        print(name)
                except errors.InvalidRequest as exc:
                    if usage_error:
                        return _fail(exc, cli.EXIT_USAGE)
                    status = _fail(exc, cli.EXIT_FAILED)
                except errors.EngineError as exc:
                    status = _fail(exc, cli.EXIT_FAILED)
    except errors.EngineError as exc:  # no engine to ask
        return _fail(exc, cli.EXIT_FAILED)
    return status
