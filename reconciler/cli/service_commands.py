"""``reconcile service ls|inspect``: thin calls on ``engine.services`` (read-only: the
reconcile loop makes services from manifests)."""

from __future__ import annotations

import argparse
import json
import sys

from reconciler.cli import connect
from reconciler.cli import main as cli
from reconciler.engine import errors
from reconciler.engine.models import services as models


def _fail(message: object) -> int:
    print(f"reconcile: {message}", file=sys.stderr)
    return cli.EXIT_FAILED


def service(args: argparse.Namespace) -> int:
    engine = connect.engine(args)
    try:
        return _run(args, engine.services)
    except errors.EngineError as exc:
        return _fail(exc.message)
    finally:
        engine.close()


def _run(args: argparse.Namespace, services: models.ServicesAPI) -> int:
    if args.service_command == "ls":
        found = services.list()
        if args.output == "json":
            print(json.dumps(found, indent=2))
        else:
            print(f"{'NAME':<24} {'STACK':<16} {'REPLICAS':<9} IMAGE")
            for s in found:
                replicas = f"{s['replicas_running']}/{s['replicas_desired']}"
                print(f"{s['name']:<24} {s['stack']:<16} {replicas:<9} {s['image']}")
        return cli.EXIT_OK
    # inspect: every service found is printed; each missing one is an error on stderr
    status = cli.EXIT_OK
    documents: list[models.ServiceDocument] = []
    for name in args.names:
        try:
            documents.append(services.inspect(name))
        except errors.NotFound as exc:
            status = _fail(exc.message)
    print(json.dumps(documents, indent=2))
    return status
