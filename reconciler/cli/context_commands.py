"""``reconcile context create|ls|use|inspect|rm``: named hosts, as ``docker context``."""

from __future__ import annotations

import argparse
import json
import sys

from reconciler.cli import main as cli
from reconciler.client import contexts


def context(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except contexts.ContextError as exc:
        print(f"reconcile: {exc}", file=sys.stderr)
        return cli.EXIT_FAILED


def _run(args: argparse.Namespace) -> int:
    command = args.context_command
    if command == "create":
        tls = {key: getattr(args, f"context_tls_{key}") for key in ("ca", "cert", "key")}
        created = contexts.create(
            args.name, host=args.context_host, description=args.description, tls=tls if any(tls.values()) else None
        )
        print(created["name"])
        return cli.EXIT_OK
    if command == "use":
        contexts.use(args.name)
        print(args.name)
        return cli.EXIT_OK
    if command == "rm":
        status = cli.EXIT_OK
        for name in args.names:
            try:
                contexts.remove(name)
                print(name)
            except contexts.ContextError as exc:
                print(f"reconcile: {exc}", file=sys.stderr)
                status = cli.EXIT_FAILED
        return status
    if command == "inspect":
        found, status = [], cli.EXIT_OK
        for name in args.names:
            try:
                found.append(contexts.get(name))
            except contexts.ContextError as exc:
                print(f"reconcile: {exc}", file=sys.stderr)
                status = cli.EXIT_FAILED
        print(json.dumps(found, indent=2))
        return status
    rows = contexts.listing()
    if args.output == "json":
        print(json.dumps(rows))
        return cli.EXIT_OK
    print(f"{'NAME':<20} {'HOST':<48} DESCRIPTION")
    for row in rows:
        name = row["name"] + (" *" if row["current"] else "")
        print(f"{name:<20} {row.get('host') or '(default socket, else in-process)':<48} {row.get('description', '')}")
    return cli.EXIT_OK
