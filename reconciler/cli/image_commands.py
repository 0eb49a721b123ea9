"""Image commands: ``pull``, ``push``, ``build``, ``login``, ``logout``, ``images``,
``tag``, ``history`` and ``image inspect|rm|prune|save|load|fsck``.

Thin: each turns arguments into one call on the image store, the registry client,
the archive module or the builder, and renders the result. The registry client
(httpx) and rich are imported only by the commands that talk to a registry.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from reconciler.cli import main as cli
from reconciler.images.store import Image, ImageError, ImageStore, normalize
from reconciler.model import quantities
from reconciler.runtime.state import StateStore


def _fail(message: object) -> int:
    print(f"reconcile: {message}", file=sys.stderr)
    return cli.EXIT_FAILED


def _in_use(root: str) -> set[str]:
    """Manifests that containers (running or not) were made from: never pruned."""
    store = StateStore(root)
    used = set()
    for name in store.names():
        state = store.read(name)
        image = (state.spec.get("image") if state else None) or {}
        if isinstance(image, dict) and image.get("manifest"):
            used.add(image["manifest"])
    return used


def _registry_config() -> Any:
    from reconciler.images.distribution import RegistryConfig

    insecure = tuple(r for r in os.environ.get("RECONCILE_INSECURE_REGISTRIES", "").split(",") if r)
    return RegistryConfig(insecure=insecure)


@contextmanager
def _progress(quiet: bool) -> Iterator[Any]:
    """Bars on a terminal; nothing when quiet or when stderr is a file (CI logs)."""
    if quiet or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console

    from reconciler.images.distribution import rich_progress

    with rich_progress(Console(stderr=True), transient=True) as callback:
        yield callback


def pull(args: argparse.Namespace) -> int:
    from reconciler.images import distribution, oci

    store = ImageStore(args.root)
    try:
        platform = oci.parse_platform(args.platform) if args.platform else None
        with _progress(args.quiet) as progress:
            image = distribution.pull(
                store, args.reference, platform=platform, progress=progress, config=_registry_config()
            )
    except (distribution.RegistryError, ImageError, oci.ManifestError) as exc:
        return _fail(exc)
    if not args.quiet:
        print(f"Digest: {image.manifest_digest}", file=sys.stderr)
    print(normalize(args.reference))
    return cli.EXIT_OK


def push(args: argparse.Namespace) -> int:
    from reconciler.images import distribution

    store = ImageStore(args.root)
    try:
        with _progress(args.quiet) as progress:
            digest = distribution.push(store, args.reference, progress=progress, config=_registry_config())
    except (distribution.RegistryError, ImageError) as exc:
        return _fail(exc)
    print(f"{normalize(args.reference)}: digest: {digest}")
    return cli.EXIT_OK


def login(args: argparse.Namespace) -> int:
    from reconciler.images import distribution

    password = args.password
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    if not args.username or password is None:
        return _fail("login needs --username and --password or --password-stdin")
    try:
        distribution.login(args.root, args.registry, args.username, password, config=_registry_config())
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


def build(args: argparse.Namespace) -> int:
    from reconciler.images import distribution
    from reconciler.images.build import builder
    from reconciler.images.build.containerfile import ContainerfileError

    store = ImageStore(args.root)
    build_args = {}
    for item in args.build_arg:
        key, sep, value = item.partition("=")
        build_args[key] = value if sep else os.environ.get(key, "")

    def fetch(reference: str) -> Image:
        return distribution.pull(store, reference, config=_registry_config())

    def show(line: str) -> None:
        if not args.quiet:
            print(line, file=sys.stderr, flush=True)

    try:
        image = builder.build(
            store,
            args.context,
            containerfile=args.file,
            tags=args.tag,
            build_args=build_args,
            target=args.target,
            cgroup_parent=args.cgroup_parent,
            progress=show,
            no_cache=args.no_cache,
            pull=fetch,
        )
    except (builder.BuildError, ContainerfileError, ImageError, distribution.RegistryError) as exc:
        return _fail(exc)
    print(image.id)
    return cli.EXIT_OK


def _created(image: Image) -> str:
    return str(image.config.get("created", ""))


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


def images(args: argparse.Namespace) -> int:
    store = ImageStore(args.root)
    rows: list[dict[str, Any]] = []
    for name, digest in store.images().items():
        try:
            image = store.image_by_digest(digest, verify=False)
        except ImageError as exc:
            print(f"reconcile: {name}: {exc}", file=sys.stderr)
            continue
        repository, _, tag = name.rpartition(":")
        rows.append(
            {
                "repository": repository,
                "tag": tag,
                "id": image.id,
                "digest": digest,
                "created": _created(image),
                "size": image.size,
            }
        )
    if args.output == "json":
        print(json.dumps(rows, indent=2))
        return cli.EXIT_OK
    print(f"{'REPOSITORY':<40} {'TAG':<16} {'IMAGE ID':<12}  {'CREATED':<22} SIZE")
    for row in rows:
        image_id = row["id"].removeprefix("sha256:")[:12]
        size = quantities.human_size(row["size"], binary=False)
        print(f"{row['repository']:<40} {row['tag']:<16} {image_id:<12}  {_ago(row['created']):<22} {size}")
    return cli.EXIT_OK


def inspect(args: argparse.Namespace) -> int:
    store = ImageStore(args.root)
    found, status = [], cli.EXIT_OK
    for reference in args.references:
        try:
            image = store.image(reference)
        except ImageError as exc:
            status = _fail(exc)
            continue
        tags = sorted(name for name, digest in store.images().items() if digest == image.manifest_digest)
        found.append(
            {
                "Id": image.id,
                "RepoTags": tags,
                "RepoDigests": [f"{name.rpartition(':')[0]}@{image.manifest_digest}" for name in tags],
                "Created": image.config.get("created"),
                "Architecture": image.config.get("architecture"),
                "Os": image.config.get("os"),
                "Config": image.config.get("config") or {},
                "Size": image.size,
                "RootFS": {"Type": "layers", "Layers": list(image.diff_ids)},
                "Manifest": {"Digest": image.manifest_digest, "MediaType": image.manifest_media_type},
            }
        )
    print(json.dumps(found, indent=2))
    return status


def history(args: argparse.Namespace) -> int:
    store = ImageStore(args.root)
    try:
        image = store.image(args.reference)
    except ImageError as exc:
        return _fail(exc)
    entries = list(reversed(image.config.get("history") or []))
    if args.output == "json":
        print(json.dumps(entries, indent=2))
        return cli.EXIT_OK
    print(f"{'CREATED':<24} {'EMPTY':<6} CREATED BY")
    for entry in entries:
        empty = "yes" if entry.get("empty_layer") else ""
        print(f"{_ago(str(entry.get('created', ''))):<24} {empty:<6} {str(entry.get('created_by', ''))[:80]}")
    return cli.EXIT_OK


def tag(args: argparse.Namespace) -> int:
    store = ImageStore(args.root)
    try:
        store.tag(args.target, store.resolve(args.source))
    except ImageError as exc:
        return _fail(exc)
    return cli.EXIT_OK


def remove(args: argparse.Namespace) -> int:
    store = ImageStore(args.root)
    in_use = set() if args.force else _in_use(args.root)
    status = cli.EXIT_OK
    for reference in args.references:
        try:
            for name in store.remove(reference, in_use=in_use):
                print(f"Untagged: {name}")
        except ImageError as exc:
            status = _fail(exc)
    store.prune(keep=_in_use(args.root))
    return status


def prune(args: argparse.Namespace) -> int:
    """Without ``-a``: what no tag and no container reaches. With it: also every
    image no container uses, as ``docker image prune -a``."""
    store = ImageStore(args.root)
    in_use = _in_use(args.root)
    if args.all:
        for name, digest in store.images().items():
            if digest not in in_use:
                store.remove(name)
                print(f"Untagged: {name}")
    counts = store.prune(keep=in_use)
    print(f"Removed {counts['blobs']} blobs, {counts['snapshots']} unpacked layers, {counts['ingests']} stale ingests")
    return cli.EXIT_OK


def fsck(args: argparse.Namespace) -> int:
    problems = ImageStore(args.root).fsck()
    for problem in problems:
        print(problem)
    if problems:
        return cli.EXIT_FAILED
    print("ok: every blob matches its digest and every tag is complete")
    return cli.EXIT_OK


def save(args: argparse.Namespace) -> int:
    from reconciler.images import archive

    store = ImageStore(args.root)
    try:
        if args.output:
            archive.save(store, args.references, args.output, format=args.format)
        elif sys.stdout.isatty():
            return _fail("refusing to write an archive to a terminal: use -o FILE or redirect")
        else:
            archive.save(store, args.references, sys.stdout.buffer, format=args.format)
    except (archive.ArchiveError, ImageError) as exc:
        return _fail(exc)
    return cli.EXIT_OK


def load(args: argparse.Namespace) -> int:
    from reconciler.images import archive

    store = ImageStore(args.root)
    try:
        loaded = archive.load(store, args.input or sys.stdin.buffer, tag=args.tag)
    except (archive.ArchiveError, ImageError) as exc:
        return _fail(exc)
    for name in loaded:
        print(f"Loaded image: {name}")
    return cli.EXIT_OK


def image(args: argparse.Namespace) -> int:
    """``reconcile image SUBCOMMAND``."""
    from reconciler.cli import container_commands

    handlers: dict[str, Callable[[argparse.Namespace], int]] = {
        "import": container_commands.image_import,
        "ls": images,
        "inspect": inspect,
        "rm": remove,
        "prune": prune,
        "save": save,
        "load": load,
        "fsck": fsck,
        "history": history,
        "tag": tag,
        "pull": pull,
        "push": push,
        "build": build,
    }
    return handlers[args.image_command](args)
