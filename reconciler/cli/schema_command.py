"""``reconcile schema``: print, write or check the JSON Schemas."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from reconciler.cli import main as cli
from reconciler.manifests import schema


def _all() -> dict[str, dict[str, Any]]:
    """The manifest kinds' schemas and the native API's OpenAPI document."""
    from reconciler.api import openapi

    return {**schema.generate(), "openapi.json": openapi.document()}


def run(args: argparse.Namespace) -> int:
    schemas = _all()
    if args.check or args.write:
        stale = []
        for filename, content in schemas.items():
            path = os.path.join(args.dir, filename)
            text = schema.dumps(content)
            try:
                with open(path, encoding="utf-8") as handle:
                    current = handle.read()
            except FileNotFoundError:
                current = None
            if current != text:
                stale.append(path)
                if args.write:
                    os.makedirs(args.dir, exist_ok=True)
                    with open(path + ".tmp", "w", encoding="utf-8") as handle:
                        handle.write(text)
                    os.replace(path + ".tmp", path)
        if args.write:
            print(f"{len(stale)} of {len(schemas)} schemas written to {args.dir}")
            return cli.EXIT_OK
        for path in stale:
            print(f"{path}: stale; run `reconcile schema --write`", file=sys.stderr)
        return cli.EXIT_FAILED if stale else cli.EXIT_OK
    filename = args.name if args.name.endswith(".json") else f"{args.name.lower()}.json"
    if filename not in schemas:
        print(f"unknown schema {args.name!r}; one of: {', '.join(sorted(schemas))}", file=sys.stderr)
        return cli.EXIT_USAGE
    sys.stdout.write(schema.dumps(schemas[filename]))
    return cli.EXIT_OK
