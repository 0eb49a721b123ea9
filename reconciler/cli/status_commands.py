"""``reconcile status`` and ``reconcile events``: what the reconcile loop applied,
what exists now, and the log of everything it did."""

from __future__ import annotations

import argparse
import json
import sys
import time

from reconciler.cli import main as cli
from reconciler.control import events
from reconciler.model import quantities


def _actual(kind: str, name: str, digest: str, root: str, cgroup_parent: str) -> str:
    if kind == "Container":
        from reconciler.runtime.containers import ContainerError, Runtime

        try:
            state = Runtime(root, cgroup_parent=cgroup_parent).inspect(name)
        except ContainerError:
            return "missing"
        return state.status if state.exit_code is None else f"{state.status} ({state.exit_code})"
    if kind == "Network":
        import os

        from reconciler.state.db import StateDB

        with StateDB(root) as db:
            record = db.get_network(name)
        return (
            "present" if record and record.bridge and os.path.exists(f"/sys/class/net/{record.bridge}") else "missing"
        )
    if kind == "Volume":
        from reconciler.volumes.local import LocalVolumes, VolumeError

        try:
            LocalVolumes(root).get(name)
        except VolumeError:
            return "missing"
        return "present"
    if kind == "Service":
        from reconciler.runtime.containers import Runtime

        replicas = [
            s
            for s in Runtime(root, cgroup_parent=cgroup_parent).containers()
            if (s.spec.get("service") or {}).get("name") == name
        ]
        running = sum(1 for s in replicas if s.status == "running")
        return f"{running}/{len(replicas)} running"
    if kind == "Image":
        from reconciler.images.store import ImageStore

        return "present" if digest and ImageStore(root).content.has(digest) else "missing"
    return "unknown"


def _health(root: str, kind: str, name: str) -> str | None:
    """A container's health as the agent's monitor last saw it; None without a check."""
    if kind != "Container":
        return None
    from reconciler.runtime.health import read_health

    state = read_health(root, name)
    return state.status if state is not None else None


def status(args: argparse.Namespace) -> int:
    from reconciler.state.db import StateDB, StateError

    try:
        with StateDB(args.root) as db:
            records = db.list_objects(stack=args.stack)
    except StateError as exc:
        print(f"reconcile: {exc}", file=sys.stderr)
        return cli.EXIT_FAILED
    last: dict[str, dict[str, object]] = {}
    for event in events.read(args.root):
        if event.get("event") == "object":
            last[str(event.get("key"))] = event
    rows = []
    for record in records:
        key = f"{record.kind.lower()}/{record.name}"
        latest = last.get(key, {})
        rows.append(
            {
                "key": key,
                "stack": record.stack,
                "actual": _actual(record.kind, record.name, record.digest, args.root, args.cgroup_parent),
                "digest": record.digest or None,
                "revision": record.status.get("revision"),
                "applied_at": record.updated_at,
                "health": _health(args.root, record.kind, record.name),
                "last_outcome": latest.get("outcome"),
                "last_error": latest.get("reason") if latest.get("outcome") in ("failed", "skipped") else None,
            }
        )
    known = {row["key"] for row in rows}
    for key, event in sorted(last.items()):  # never applied, and failing
        wanted_stack = args.stack is None or event.get("stack") == args.stack
        if key not in known and event.get("outcome") in ("failed", "skipped") and wanted_stack:
            rows.append(
                {
                    "key": key,
                    "stack": event.get("stack"),
                    "actual": "missing",
                    "digest": None,
                    "revision": None,
                    "applied_at": None,
                    "health": None,
                    "last_outcome": event.get("outcome"),
                    "last_error": event.get("reason"),
                }
            )
    if args.output == "json":
        print(json.dumps(rows, indent=2))
        return cli.EXIT_OK
    print(f"{'OBJECT':<32} {'STACK':<14} {'ACTUAL':<14} {'HEALTH':<10} {'REVISION':<10} LAST ERROR")
    for row in rows:
        revision, health = str(row["revision"] or "")[:8], row["health"] or ""
        actual, error = row["actual"], row["last_error"] or ""
        print(f"{row['key']:<32} {row['stack'] or '':<14} {actual:<14} {health:<10} {revision:<10} {error}")
    return cli.EXIT_OK


def _since(text: str | None) -> float | None:
    """``--since 10m`` (a duration ago) or seconds since the epoch."""
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return time.time() - quantities.parse_duration(text)


def show_events(args: argparse.Namespace) -> int:
    try:
        since = _since(args.since)
    except ValueError as exc:
        print(f"reconcile: --since: {exc}", file=sys.stderr)
        return cli.EXIT_USAGE
    stream = (
        events.follow(args.root, since=since, stop=lambda: False)
        if args.follow
        else iter(events.read(args.root, since=since))
    )
    try:
        for event in stream:
            if args.output == "json":
                print(json.dumps(event), flush=True)
                continue
            when = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(float(event.get("time", 0))))  # type: ignore[arg-type]
            rest = " ".join(f"{k}={v}" for k, v in sorted(event.items()) if k not in ("time", "event") and v)
            print(f"{when}Z {event.get('event')} {rest}", flush=True)
    except KeyboardInterrupt:
        pass
    return cli.EXIT_OK
