"""``reconcile system info|version|df|prune`` (and ``reconcile info``, ``reconcile version``).

``info`` says which engine answered: ``local`` (in-process) or the agent's host, so a
user can tell where a command ran.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from reconciler.cli import connect
from reconciler.cli import main as cli
from reconciler.engine import errors


def system(args: argparse.Namespace) -> int:
    engine = connect.engine(args)
    try:
        command = args.system_command
        if command == "info":
            return _show(args, engine.system.info(), _info_text)
        if command == "version":
            return _show(args, engine.system.version(), _version_text)
        if command == "df":
            return _show(args, engine.system.df(), _df_text)
        result = engine.system.prune(volumes=args.volumes)
        return _show(args, result, _prune_text)
    except errors.EngineError as exc:
        print(f"reconcile: {exc.message}", file=sys.stderr)
        return exc.exit_code or cli.EXIT_FAILED
    finally:
        engine.close()


def _show(args: argparse.Namespace, document: Any, text: Any) -> int:
    if getattr(args, "output", "text") == "json":
        print(json.dumps(document, indent=2))
    else:
        print(text(document))
    return cli.EXIT_OK


def _size(count: int) -> str:
    from reconciler.model import quantities

    return quantities.human_size(count)


def _info_text(info: Any) -> str:
    counts = info["containers"]
    return "\n".join(
        [
            f"Host: {info['host']}",
            f"Version: {info['version']} (API {info['api_version']})",
            f"Root: {info['root']}",
            f"Cgroup parent: {info['cgroup_parent']} (cgroup v{info['cgroup_version'] or '?'})",
            f"Containers: {counts['total']} (running {counts['running']}, paused {counts['paused']}, "
            f"exited {counts['exited']}, created {counts['created']})",
            f"Images: {info['images']}",
            f"Networks: {info['networks']}",
            f"Volumes: {info['volumes']}",
            f"Kernel: {info['kernel']}",
            f"OS/Arch: {info['os']}/{info['arch']}",
            f"CPUs: {info['cpus']}",
            f"Memory: {_size(info['memory'])}",
            f"Python: {info['python']}",
        ]
    )


def _version_text(version: Any) -> str:
    return "\n".join(f"{key}: {value}" for key, value in version.items())


def _df_text(usage: Any) -> str:
    lines = [f"{'TYPE':<12} {'TOTAL':>6} {'ACTIVE':>6} {'SIZE':>10} {'RECLAIMABLE':>12}"]
    for kind in ("images", "containers", "volumes"):
        item = usage[kind]
        lines.append(
            f"{kind.capitalize():<12} {item['count']:>6} {item['active']:>6} {_size(item['bytes']):>10} "
            f"{_size(item['reclaimable']):>12}"
        )
    return "\n".join(lines)


def _prune_text(result: Any) -> str:
    lines = []
    for kind in ("containers", "networks", "images", "volumes"):
        for name in result[kind]:
            lines.append(f"deleted {kind[:-1]} {name}")
    lines.append(f"Total reclaimed space: {_size(result['bytes_freed'])}")
    return "\n".join(lines)
