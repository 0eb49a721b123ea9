"""``reconcile network create|ls|inspect|rm|prune|connect|disconnect``: thin calls on ``engine.networks``."""

from __future__ import annotations

import argparse
import json
import sys

from reconciler.cli import connect
from reconciler.cli import main as cli
from reconciler.engine import errors
from reconciler.engine.models import networks as models


def _fail(message: object) -> int:
    print(f"reconcile: {message}", file=sys.stderr)
    return cli.EXIT_FAILED


def network(args: argparse.Namespace) -> int:
    engine = connect.engine(args)
    try:
        return _run(args, engine.networks)
    except errors.EngineError as exc:
        return _fail(exc.message)
    finally:
        engine.close()  # the network manager's state database


def _run(args: argparse.Namespace, networks: models.NetworksAPI) -> int:
    command = args.network_command
    if command == "create":
        summary = networks.create(
            {
                "name": args.name,
                "subnet": args.subnet,
                "gateway": args.gateway,
                "ip_range": args.ip_range,
                "internal": args.internal,
                "labels": dict(item.partition("=")[::2] for item in args.label),
            }
        )
        print(summary["name"])
    elif command == "ls":
        found = networks.list()
        if args.output == "json":
            print(json.dumps([models.inspect_document(s) for s in found], indent=2))
        else:
            print(f"{'NAME':<24} {'SUBNET':<18} {'GATEWAY':<15} {'BRIDGE':<16} INTERNAL")
            for s in found:
                print(f"{s['name']:<24} {s['subnet']:<18} {s['gateway']:<15} {s['bridge'] or '':<16} {s['internal']}")
    elif command == "inspect":
        print(json.dumps([networks.inspect(name) for name in args.names], indent=2))
    elif command == "rm":
        status = cli.EXIT_OK
        for name in args.names:
            try:
                networks.remove(name)
                print(name)
            except errors.EngineError as exc:
                status = _fail(exc.message)
        return status
    elif command == "connect":
        networks.connect(args.network, {"container": args.container, "aliases": args.alias, "ip": args.ip})
    elif command == "disconnect":
        networks.disconnect(args.network, {"container": args.container, "force": args.force})
    elif command == "prune":
        for name in networks.prune()["removed"]:
            print(f"Deleted: {name}")
    return cli.EXIT_OK
