"""Image commands: ``pull``, ``push``, ``build``, ``login``, ``logout``, ``images``,
``tag``, ``history`` and ``image import|inspect|rm|prune|save|load|fsck``.

Thin: each turns arguments into one call on ``engine.images`` (in-process or an
agent's, see ``cli.connect``) and renders the result. rich is imported only to draw
progress bars on a terminal. ``login``/``logout`` stay here: credentials belong to
the client, as docker's do; they alone talk to a registry from the CLI.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from reconciler.cli import connect
from reconciler.cli import main as cli
from reconciler.engine import errors
from reconciler.engine.models import images as models
from reconciler.model import quantities

Command = Callable[[argparse.Namespace, models.ImagesAPI], int]


def _fail(message: object, exit_code: int | None = None) -> int:
    print(f"reconcile: {message}", file=sys.stderr)
    return exit_code if exit_code is not None else cli.EXIT_FAILED


def _engine_error(exc: errors.EngineError) -> int:
    return _fail(exc.message, exc.exit_code)


def _with_images(command: Command) -> Callable[[argparse.Namespace], int]:
    """``command`` run on this command's engine; an engine error is its message and exit 1."""

    def run(args: argparse.Namespace) -> int:
        try:
            engine = connect.engine(args)
        except errors.EngineError as exc:
            return _engine_error(exc)
        try:
            return command(args, engine.images)
        except errors.EngineError as exc:
            return _engine_error(exc)
        finally:
            engine.close()

    return run


@contextlib.contextmanager
def _bars(quiet: bool) -> Iterator[models.Progress | None]:
    """A progress callback drawing one bar per blob on a terminal; None when quiet
    or when stderr is a file (CI logs)."""
    if quiet or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn, TransferSpeedColumn

    bars = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    tasks: dict[str, TaskID] = {}
    lock = threading.Lock()

    def callback(event: dict[str, Any]) -> None:
        key = str(event.get("id", ""))
        if not key:
            return
        label = f"{key} {event.get('status', '')}"
        total = int(event.get("total") or 0) or None
        with lock:
            task = tasks.get(key)
            if task is None:
                task = tasks[key] = bars.add_task(label, total=total)
            bars.update(task, description=label, completed=int(event.get("current") or 0), total=total)

    with bars:
        yield callback


# --- registries ---------------------------------------------------------------


def pull_with_progress(
    images: models.ImagesAPI, reference: str, *, quiet: bool = False, platform: str | None = None, status: bool = False
) -> models.ImageSummary:
    """Pull ``reference`` drawing its progress on stderr (bars on a terminal), then its
    digest and, with ``status``, docker's ``Status: Downloaded newer image for …``
    line (what ``run`` prints when it pulled a missing image)."""
    with _bars(quiet) as progress:
        pulled = images.pull(reference, platform=platform, progress=progress)
    if not quiet:
        print(f"Digest: {pulled['digest']}", file=sys.stderr)
        if status:
            print(f"Status: Downloaded newer image for {pulled['repository']}:{pulled['tag']}", file=sys.stderr)
    return pulled


def _pull(args: argparse.Namespace, images: models.ImagesAPI) -> int:
    pulled = pull_with_progress(images, args.reference, quiet=args.quiet, platform=args.platform)
    print(f"{pulled['repository']}:{pulled['tag']}")
    return cli.EXIT_OK


def _push(args: argparse.Namespace, images: models.ImagesAPI) -> int:
    with _bars(args.quiet) as progress:
        pushed = images.push(args.reference, progress=progress)
    print(f"{pushed['reference']}: digest: {pushed['digest']}")
    return cli.EXIT_OK


def login(args: argparse.Namespace) -> int:
    from reconciler.engine.images import registry_config
    from reconciler.images import distribution

    password = args.password
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    if not args.username or password is None:
        return _fail("login needs --username and --password or --password-stdin")
    try:
        distribution.login(args.root, args.registry, args.username, password, config=registry_config())
    except distribution.RegistryError as exc:
        return _fail(exc)
    print("Login Succeeded")
    return cli.EXIT_OK


def logout(args: argparse.Namespace) -> int:
    from reconciler.images import distribution

    if not distribution.logout(args.root, args.registry):
        return _fail(f"not logged in to {args.registry}")
    print(f"Removing login credentials for {args.registry}")
    return cli.EXIT_OK


# --- making images ------------------------------------------------------------


def _containerfile(args: argparse.Namespace) -> str | None:
    """``-f``, relative to the context when it lies inside it (as the builder names
    it in errors), else absolute."""
    if not args.file:
        return None
    path = os.path.abspath(str(args.file))
    relative = os.path.relpath(path, os.path.abspath(args.build_context))
    return path if relative.startswith("..") else relative


def _build(args: argparse.Namespace, images: models.ImagesAPI) -> int:
    build_args = []
    for item in args.build_arg:
        key, sep, value = item.partition("=")
        build_args.append(f"{key}={value if sep else os.environ.get(key, '')}")

    def show(event: dict[str, Any]) -> None:
        if event.get("status") == "line":
            print(event.get("text", ""), file=sys.stderr, flush=True)

    built = images.build(
        args.build_context,
        tags=args.tag,
        containerfile=_containerfile(args),
        build_args=build_args,
        target=args.target,
        no_cache=args.no_cache,
        progress=None if args.quiet else show,
    )
    print(built["id"])
    return cli.EXIT_OK


def _import(args: argparse.Namespace, images: models.ImagesAPI) -> int:
    print(images.import_tarball(args.tarball, args.reference)["id"])
    return cli.EXIT_OK


def _tag(args: argparse.Namespace, images: models.ImagesAPI) -> int:
    images.tag(args.source, args.target)
    return cli.EXIT_OK


# --- reading --------------------------------------------------------------------


def _ago(created: str) -> str:
    """``5 minutes ago``, as ``docker images`` shows the age."""
    try:
        then = time.mktime(time.strptime(created[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
    except ValueError:
        return "N/A"
    seconds = max(0, int(time.time() - then))
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''} ago"
    return "Less than a minute ago"


def _images(args: argparse.Namespace, images: models.ImagesAPI) -> int:
    rows = []
    for row in images.list():
        if "error" in row:
            print(f"reconcile: {row['repository']}:{row['tag']}: {row['error']}", file=sys.stderr)
            continue
        rows.append(row)
    if args.output == "json":
        print(json.dumps(rows, indent=2))
        return cli.EXIT_OK
    if args.quiet:  # docker images -q: each image once, for `rmi $(images -q)`
        ids = [row["id"] if args.no_trunc else row["id"].removeprefix("sha256:")[:12] for row in rows]
        sys.stdout.write("".join(f"{image_id}\n" for image_id in dict.fromkeys(ids)))
        return cli.EXIT_OK
    print(f"{'REPOSITORY':<40} {'TAG':<16} {'IMAGE ID':<12}  {'CREATED':<22} SIZE")
    for row in rows:
        image_id = row["id"] if args.no_trunc else row["id"].removeprefix("sha256:")[:12]
        size = quantities.human_size(row["size"], binary=False)
        print(f"{row['repository']:<40} {row['tag']:<16} {image_id:<12}  {_ago(row['created']):<22} {size}")
    return cli.EXIT_OK


def _inspect(args: argparse.Namespace, images: models.ImagesAPI) -> int:
    """Images as JSON, or through ``-f/--format``'s template (one line each)."""
    from reconciler.cli import gotemplate

    try:
        template = gotemplate.parse(args.format) if args.format else None
    except gotemplate.TemplateError as exc:
        return _fail(f"template parsing error: {exc}", cli.EXIT_USAGE)
    found, status = [], cli.EXIT_OK
    for reference in args.references:
        try:
            found.append(images.inspect(reference))
        except errors.EngineError as exc:
            status = _engine_error(exc)
    if template is None:
        print(json.dumps(found, indent=2))
        return status
    for document in found:
        try:
            print(template.execute(document))
        except gotemplate.TemplateError as exc:
            status = _fail(f"template: {exc}")
    return status


def _history(args: argparse.Namespace, images: models.ImagesAPI) -> int:
    entries = images.history(args.reference)
    if args.output == "json":
        print(json.dumps(entries, indent=2))
        return cli.EXIT_OK
    print(f"{'CREATED':<24} {'EMPTY':<6} CREATED BY")
    for entry in entries:
        empty = "yes" if entry.get("empty_layer") else ""
        print(f"{_ago(str(entry.get('created', ''))):<24} {empty:<6} {str(entry.get('created_by', ''))[:80]}")
    return cli.EXIT_OK


def _fsck(args: argparse.Namespace, images: models.ImagesAPI) -> int:
    problems = images.fsck()["problems"]
    for problem in problems:
        print(problem)
    if problems:
        return cli.EXIT_FAILED
    print("ok: every blob matches its digest and every tag is complete")
    return cli.EXIT_OK


# --- removing -------------------------------------------------------------------


def _remove(args: argparse.Namespace, images: models.ImagesAPI) -> int:
    status = cli.EXIT_OK
    for reference in args.references:
        try:
            for name in images.remove(reference, force=args.force)["untagged"]:
                print(f"Untagged: {name}")
        except errors.EngineError as exc:
            status = _engine_error(exc)
    return status


def _prune(args: argparse.Namespace, images: models.ImagesAPI) -> int:
    """Without ``-a``: what no tag and no container reaches. With it: also every
    image no container uses, as ``docker image prune -a``."""
    pruned = images.prune(all=args.all)
    for name in pruned["untagged"]:
        print(f"Untagged: {name}")
    print(f"Removed {pruned['blobs']} blobs, {pruned['snapshots']} unpacked layers, {pruned['ingests']} stale ingests")
    return cli.EXIT_OK


# --- archives -------------------------------------------------------------------


def _save(args: argparse.Namespace, images: models.ImagesAPI) -> int:
    if args.output:
        images.save(args.references, format=args.format, destination=args.output)
        return cli.EXIT_OK
    if sys.stdout.isatty():
        return _fail("refusing to write an archive to a terminal: use -o FILE or redirect")
    # the engine writes a file: spooled there, then copied to stdout
    with tempfile.NamedTemporaryFile(prefix="reconcile-save-", suffix=".tar") as spool:
        try:
            images.save(args.references, format=args.format, destination=spool.name)
        except errors.EngineError as exc:
            return _fail(exc.message.replace(spool.name, "<stdout>"), exc.exit_code)
        with open(spool.name, "rb") as archive:
            sys.stdout.flush()
            shutil.copyfileobj(archive, sys.stdout.buffer)
            sys.stdout.buffer.flush()
    return cli.EXIT_OK


def _load(args: argparse.Namespace, images: models.ImagesAPI) -> int:
    if args.input:
        loaded = images.load(args.input, tag=args.tag)["loaded"]
    else:  # the engine reads a file: stdin is spooled to one first
        with tempfile.NamedTemporaryFile(prefix="reconcile-load-", suffix=".tar") as spool:
            shutil.copyfileobj(sys.stdin.buffer, spool)
            spool.flush()
            try:
                loaded = images.load(spool.name, tag=args.tag)["loaded"]
            except errors.EngineError as exc:
                return _fail(exc.message.replace(spool.name, "<stdin>"), exc.exit_code)
    for name in loaded:
        print(f"Loaded image: {name}")
    return cli.EXIT_OK


# --- entry points (cli.main dispatches here by name) ----------------------------

pull = _with_images(_pull)
push = _with_images(_push)
build = _with_images(_build)
images = _with_images(_images)
tag = _with_images(_tag)
history = _with_images(_history)

_SUBCOMMANDS: dict[str, Command] = {
    "import": _import,
    "ls": _images,
    "inspect": _inspect,
    "rm": _remove,
    "prune": _prune,
    "save": _save,
    "load": _load,
    "fsck": _fsck,
    "history": _history,
    "tag": _tag,
    "pull": _pull,
    "push": _push,
    "build": _build,
}


def image(args: argparse.Namespace) -> int:
    """``reconcile image SUBCOMMAND``."""
    return _with_images(_SUBCOMMANDS[args.image_command])(args)
