"""``reconcile status`` and ``reconcile events``: what the reconcile loop applied,
what exists now, and the log of everything it did (the engine's ``stacks.status``
and ``events`` groups, rendered)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import TYPE_CHECKING

from reconciler.cli import connect
from reconciler.engine.errors import EngineError
from reconciler.exitcodes import EXIT_FAILED, EXIT_OK, EXIT_USAGE

if TYPE_CHECKING:
    from collections.abc import Iterator

    from reconciler.engine.models.events import Event
    from reconciler.engine.models.stacks import StatusRow


def status(args: argparse.Namespace) -> int:
    try:
        rows: list[StatusRow] = connect.engine(args).stacks.status(stack=args.stack)
    except EngineError as exc:
        print(f"reconcile: {exc.message}", file=sys.stderr)
        return exc.exit_code if exc.exit_code is not None else EXIT_FAILED
    if args.output == "json":
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    print(f"{'OBJECT':<32} {'STACK':<14} {'ACTUAL':<14} {'HEALTH':<10} {'REVISION':<10} LAST ERROR")
    for row in rows:
        revision, health = str(row["revision"] or "")[:8], row["health"] or ""
        actual, error = row["actual"], row["last_error"] or ""
        print(f"{row['key']:<32} {row['stack'] or '':<14} {actual:<14} {health:<10} {revision:<10} {error}")
    return EXIT_OK


def _since(text: str | None) -> float | None:
    """``--since 10m`` (a duration ago) or seconds since the epoch."""
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        from reconciler.model import quantities

        return time.time() - quantities.parse_duration(text)


def show_events(args: argparse.Namespace) -> int:
    try:
        since = _since(args.since)
    except ValueError as exc:
        print(f"reconcile: --since: {exc}", file=sys.stderr)
        return EXIT_USAGE
    engine = connect.engine(args)
    try:
        stream: Iterator[Event] = (
            engine.events.follow(since=since) if args.follow else iter(engine.events.list(since=since))
        )
        for event in stream:
            if args.output == "json":
                print(json.dumps(event), flush=True)
                continue
            when = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(float(event.get("time", 0))))
            rest = " ".join(f"{k}={v}" for k, v in sorted(event.items()) if k not in ("time", "event") and v)
            print(f"{when}Z {event.get('event')} {rest}", flush=True)
    except KeyboardInterrupt:
        pass
    except EngineError as exc:
        print(f"reconcile: {exc.message}", file=sys.stderr)
        return exc.exit_code if exc.exit_code is not None else EXIT_FAILED
    return EXIT_OK
