"""``reconcile volume create|ls|inspect|rm|prune``: thin calls on the local volume driver."""

from __future__ import annotations

import argparse
import json
import sys
import time

from reconciler.cli import main as cli
from reconciler.volumes.local import LocalVolumes, Volume, VolumeError


def _fail(message: object) -> int:
    print(f"reconcile: {message}", file=sys.stderr)
    return cli.EXIT_FAILED


def _document(volume: Volume) -> dict[str, object]:
    """The shape of ``docker volume inspect``."""
    return {
        "Name": volume.name,
        "Driver": volume.driver,
        "Mountpoint": volume.mountpoint,
        "Labels": volume.labels,
        "Options": volume.options,
        "CreatedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(volume.created_at)),
        "Scope": "local",
        "Retain": volume.retain,
    }


def volume(args: argparse.Namespace) -> int:
    volumes = LocalVolumes(args.root)
    try:
        if args.volume_command == "create":
            labels = dict(item.partition("=")[::2] for item in args.label)
            made = volumes.create(args.name, labels=labels) if args.name else volumes.create_anonymous(labels=labels)
            print(made.name)
        elif args.volume_command == "ls":
            found = volumes.list()
            if args.output == "json":
                print(json.dumps([_document(v) for v in found], indent=2))
            else:
                print(f"{'DRIVER':<8} VOLUME NAME")
                for item in found:
                    print(f"{item.driver:<8} {item.name}")
        elif args.volume_command == "inspect":
            print(json.dumps([_document(volumes.get(name)) for name in args.names], indent=2))
        elif args.volume_command == "rm":
            status = cli.EXIT_OK
            for name in args.names:
                try:
                    volumes.remove(name, force=args.force)
                    print(name)
                except VolumeError as exc:
                    status = _fail(exc)
            return status
        elif args.volume_command == "prune":
            for name in volumes.prune(all=args.all):
                print(f"Deleted: {name}")
    except VolumeError as exc:
        return _fail(exc)
    return cli.EXIT_OK
