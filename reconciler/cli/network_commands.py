"""``reconcile network create|ls|inspect|rm|prune``: thin calls on the network manager."""

from __future__ import annotations

import argparse
import json
import sys

from reconciler.cli import main as cli
from reconciler.network.manager import DEFAULT_NETWORK, NetworkError, NetworkManager
from reconciler.state.db import NetworkRecord, StateError


def _fail(message: object) -> int:
    print(f"reconcile: {message}", file=sys.stderr)
    return cli.EXIT_FAILED


def _document(manager: NetworkManager, record: NetworkRecord) -> dict[str, object]:
    """The shape of ``docker network inspect`` (the parts we have)."""
    endpoints = manager.db.list_endpoints(network=record.name)
    return {
        "Name": record.name,
        "Driver": record.driver,
        "Internal": record.internal,
        "IPAM": {
            "Config": [
                {
                    "Subnet": str(record.subnet),
                    "Gateway": str(record.gateway),
                    **({"IPRange": str(record.ip_range)} if record.ip_range else {}),
                }
            ]
        },
        "Options": {"bridge": record.bridge, "mtu": record.mtu},
        "Labels": record.labels,
        "Containers": {
            e.container: {
                "IPv4Address": f"{e.address}/{record.subnet.prefixlen}",
                "MacAddress": e.mac,
                "Aliases": e.aliases,
            }
            for e in endpoints
        },
    }


def network(args: argparse.Namespace) -> int:
    try:
        manager = NetworkManager(args.root)
    except StateError as exc:
        return _fail(exc)
    try:
        return _run(args, manager)
    except (NetworkError, StateError) as exc:
        return _fail(exc)
    finally:
        manager.close()


def _forget_gone_containers(root: str, manager: NetworkManager) -> None:
    """Endpoints of containers that no longer exist (an engine killed between removing
    a container and detaching it) are detached, so they never hold a network."""
    from reconciler.runtime.state import StateStore

    existing = set(StateStore(root).names())
    for container in {e.container for e in manager.db.list_endpoints()} - existing:
        manager.detach(container)


def _run(args: argparse.Namespace, manager: NetworkManager) -> int:
    command = args.network_command
    if command in ("rm", "prune"):
        _forget_gone_containers(args.root, manager)
    if command == "create":
        labels = dict(item.partition("=")[::2] for item in args.label)
        record = manager.create(
            args.name,
            subnet=args.subnet,
            gateway=args.gateway,
            ip_range=args.ip_range,
            internal=args.internal,
            labels=labels,
        )
        print(record.name)
    elif command == "ls":
        records = manager.networks()
        if args.output == "json":
            print(json.dumps([_document(manager, r) for r in records], indent=2))
        else:
            print(f"{'NAME':<24} {'SUBNET':<18} {'GATEWAY':<15} {'BRIDGE':<16} INTERNAL")
            for r in records:
                print(f"{r.name:<24} {r.subnet!s:<18} {r.gateway!s:<15} {r.bridge or '':<16} {r.internal}")
    elif command == "inspect":
        print(json.dumps([_document(manager, manager.get(name)) for name in args.names], indent=2))
    elif command == "rm":
        status = cli.EXIT_OK
        for name in args.names:
            try:
                manager.remove(name)
                print(name)
            except NetworkError as exc:
                status = _fail(exc)
        return status
    elif command == "prune":
        for record in manager.networks():
            if record.name != DEFAULT_NETWORK and not manager.users(record.name):
                manager.remove(record.name)
                print(f"Deleted: {record.name}")
    return cli.EXIT_OK
