"""``reconcile validate`` and ``reconcile plan``."""

from __future__ import annotations

import argparse
import json
import sys

from reconciler.cli import main as cli
from reconciler.cli.style import for_stream, stdout_style
from reconciler.manifests.errors import InvalidManifests
from reconciler.manifests.loader import load_directory
from reconciler.model.manifest import Desired


def _load(args: argparse.Namespace) -> Desired | None:
    """The desired state, or None after reporting every error like a compiler does."""
    try:
        return load_directory(args.directory, stack=args.stack)
    except InvalidManifests as exc:
        if args.output == "json":
            report = {"valid": False, "errors": [e.as_dict() for e in exc.errors]}
            print(json.dumps(report, indent=2))
        else:
            style = for_stream(sys.stderr, args.color)
            for error in exc.errors:
                where, _, rest = str(error).partition(": ")
                print(f"{style(where, 'bold')}: {rest}", file=sys.stderr)
            count = len(exc.errors)
            print(f"{args.directory}: {count} error{'s' if count != 1 else ''}; nothing applied", file=sys.stderr)
        return None


def validate(args: argparse.Namespace) -> int:
    desired = _load(args)
    if desired is None:
        return cli.EXIT_FAILED
    if args.output == "json":
        print(json.dumps({"valid": True, "stack": desired.stack, "objects": len(desired.objects), "errors": []}))
    else:
        print(f"{args.directory}: stack {desired.stack!r}, {len(desired.objects)} objects, valid")
    return cli.EXIT_OK


def _resolve_images(args: argparse.Namespace, desired: Desired) -> int:
    """Fill ``desired.image_digests`` from the local store or the registries, so the
    plan shows digests old → new and recreates what runs a tag that moved."""
    from reconciler.images import resolve
    from reconciler.images.store import ImageStore
    from reconciler.model.image import Image

    images = [obj for obj in desired.objects if isinstance(obj, Image)]
    try:
        desired.image_digests.update(
            resolve.digests(ImageStore(args.root), images, refresh=args.resolve_images == "registry")
        )
    except resolve.ResolveError as exc:
        print(f"reconcile: {exc}", file=sys.stderr)
        return cli.EXIT_FAILED
    return cli.EXIT_OK


def plan(args: argparse.Namespace) -> int:
    from reconciler.model.observed import Observed
    from reconciler.plan import plan as make_plan

    desired = _load(args)
    if desired is None:
        return cli.EXIT_FAILED
    observed = Observed()
    if args.observed:
        try:
            with open(args.observed, encoding="utf-8") as handle:
                observed = Observed.model_validate_json(handle.read())
        except (OSError, ValueError) as exc:
            print(f"{args.observed}: cannot read observed state: {exc}", file=sys.stderr)
            return cli.EXIT_FAILED
    if args.resolve_images:
        failed = _resolve_images(args, desired)
        if failed:
            return failed
    result = make_plan(desired, observed, prune=args.prune, prune_volumes=args.prune_volumes)
    if args.output == "json":
        sys.stdout.write(result.model_dump_json(indent=2) + "\n")
    else:
        from reconciler.cli.render import plan_text

        print(plan_text(result, stdout_style(args.color), verbose=args.verbose))
    if result.has_conflicts:
        return cli.EXIT_FAILED
    if args.detailed_exitcode and result.has_changes:
        return cli.EXIT_CHANGES
    return cli.EXIT_OK
