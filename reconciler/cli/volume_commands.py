"""``reconcile volume create|ls|inspect|rm|prune``: thin calls on ``engine.volumes``."""

from __future__ import annotations

import argparse
import json
import sys

from reconciler.cli import connect
from reconciler.cli import main as cli
from reconciler.engine import errors
from reconciler.engine.models import volumes as models


def _fail(message: object) -> int:
    print(f"reconcile: {message}", file=sys.stderr)
    return cli.EXIT_FAILED


def volume(args: argparse.Namespace) -> int:
    engine = connect.engine(args)
    try:
        return _run(args, engine.volumes)
    except errors.EngineError as exc:
        return _fail(exc.message)
    finally:
        engine.close()


def _run(args: argparse.Namespace, volumes: models.VolumesAPI) -> int:
    command = args.volume_command
    if command == "create":
        labels = dict(item.partition("=")[::2] for item in args.label)
        print(volumes.create({"name": args.name or None, "labels": labels})["name"])
    elif command == "ls":
        found = volumes.list()
        if args.output == "json":
            print(json.dumps([models.inspect_document(v) for v in found], indent=2))
        else:
            print(f"{'DRIVER':<8} VOLUME NAME")
            for item in found:
                print(f"{item['driver']:<8} {item['name']}")
    elif command == "inspect":
        print(json.dumps([volumes.inspect(name) for name in args.names], indent=2))
    elif command == "rm":
        status = cli.EXIT_OK
        for name in args.names:
            try:
                volumes.remove(name, force=args.force)
                print(name)
            except errors.EngineError as exc:
                status = _fail(exc.message)
        return status
    elif command == "prune":
        for name in volumes.prune(all=args.all)["removed"]:
            print(f"Deleted: {name}")
    return cli.EXIT_OK
