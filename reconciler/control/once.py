"""``reconcile --once DIR``: one pass of observe → plan → apply, for CI.

Exit codes (stable): 0 converged and nothing changed; 2 converged after applying
changes; 1 failed (invalid manifests, a conflict, an action that failed). With
``--dry-run`` nothing is touched (no pulls, no builds) and the code says whether
there would be changes (2) or not (0).

Two passes on one root never interleave: ``ROOT/reconcile.lock`` is held for the
whole pass; a second one waits, saying so, or fails at once with ``--no-wait``.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from reconciler.cli import main as cli

if TYPE_CHECKING:
    from reconciler.control.apply import Result
    from reconciler.model.plan import Plan

EXIT_CHANGED = 2


@contextlib.contextmanager
def root_lock(root: str, *, wait: bool) -> Iterator[None]:
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, "reconcile.lock"), "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                raise
            print(f"reconcile: another pass holds {root}/reconcile.lock; waiting", file=sys.stderr)
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def run(args: argparse.Namespace) -> int:
    """``reconcile --once``: one pass, reported; its exit code."""
    return one_pass(args, report=True)


def one_pass(args: argparse.Namespace, *, report: bool, on_result: Callable[[Result], None] | None = None) -> int:
    """Load, lock, observe, plan, apply. ``report`` prints the plan or results table;
    ``on_result`` hears of each object as it is done (the agent logs them).

    First, unless this is a dry run, the shortcut: when the last pass found nothing
    to do and nothing it depended on has changed since (``control.converged``), its
    report is repeated without loading a manifest or observing a container."""
    from reconciler.control import converged

    started = time.monotonic()
    key = shortcut_key(args)
    if not args.dry_run and os.path.exists(os.path.join(args.root, converged.RECORD)):
        try:
            with root_lock(args.root, wait=not args.no_wait):
                recorded = converged.still_converged(args.root, args.directory, key)
        except BlockingIOError:
            print(f"reconcile: another pass holds {args.root}/reconcile.lock (--no-wait)", file=sys.stderr)
            return cli.EXIT_FAILED
        if recorded is not None:
            return _report_recorded(args, recorded, started, show=report)
    loaded = None if args.dry_run else converged.fingerprint(args.root, args.directory, [], key)
    return _full_pass(args, report=report, on_result=on_result, started=started, key=key, loaded=loaded)


def shortcut_key(args: argparse.Namespace) -> dict[str, Any]:
    """What, besides the inputs, shapes a pass's plan: a record made under other
    arguments (or by another version) is not used."""
    from reconciler import __version__

    return {
        "version": __version__,
        "directory": os.path.abspath(args.directory),
        "stack": args.stack,
        "prune": args.prune,
        "prune_volumes": args.prune_volumes,
        "cgroup_parent": args.cgroup_parent,
    }


def _full_pass(
    args: argparse.Namespace,
    *,
    report: bool,
    on_result: Callable[[Result], None] | None,
    started: float,
    key: dict[str, Any],
    loaded: dict[str, Any] | None,
) -> int:
    """The pass itself. ``loaded`` is the fingerprint taken before the manifests were
    read (None on a dry run): a pass that changes nothing records itself only when the
    manifests are still those it read."""
    from reconciler.cli.manifest_commands import _load
    from reconciler.control import apply, converged, drivers, events, observe
    from reconciler.images import resolve
    from reconciler.images.store import ImageStore
    from reconciler.model.image import Image
    from reconciler.network.manager import NetworkManager
    from reconciler.plan import plan as make_plan
    from reconciler.runtime.containers import Runtime
    from reconciler.volumes.local import LocalVolumes

    desired = _load(args)
    if desired is None:
        from reconciler.control import events

        events.append(args.root, "invalid", directory=args.directory, action="nothing applied")
        return cli.EXIT_FAILED
    try:
        with root_lock(args.root, wait=not args.no_wait):
            before = converged.fingerprint(args.root, args.directory, desired.inputs, key)
            images = ImageStore(args.root)
            image_objects = {o.metadata.name: o for o in desired.objects if isinstance(o, Image)}
            desired.image_digests.update(resolve.digests(images, image_objects.values()))
            runtime = Runtime(args.root, cgroup_parent=args.cgroup_parent)
            networks = NetworkManager(args.root)
            volumes = LocalVolumes(args.root)
            try:
                drifted: list[str] = []
                later: list[str] = []
                observed = observe.observe(
                    networks.db, runtime, networks, volumes, images, drifted=drifted, later=later
                )
                for drifted_key in drifted:
                    events.append(
                        args.root, "drift", key=drifted_key, stack=desired.stack, action="reported, not healed"
                    )
                    print(f"reconcile: {drifted_key} drifted (drift: warn): not healed", file=sys.stderr)
                # not objects of the plan, but drift all the same
                healed, heal_failed = (
                    ([], False) if args.dry_run else _heal_below_objects(args.root, desired.stack, runtime, networks)
                )
                plan = make_plan(desired, observed, prune=args.prune, prune_volumes=args.prune_volumes)
                if args.dry_run:
                    return _report(args, plan, None, started, show=report)
                kinds = drivers.Drivers(
                    stack=desired.stack,
                    runtime=runtime,
                    images=images,
                    networks=networks,
                    volumes=volumes,
                    desired_images=image_objects,
                    db=networks.db,
                    conditions=wait_conditions(desired.objects),
                    timeout=getattr(args, "timeout", 300.0),
                )
                show = on_result or (None if args.output == "json" else _line)
                revision = manifest_revision(args.directory)

                def record(result: Result) -> None:
                    events.append(
                        args.root,
                        "object",
                        key=result.key,
                        outcome=result.outcome,
                        reason=result.reason,
                        stack=desired.stack,
                        revision=revision,
                    )
                    if show is not None:
                        show(result)

                applier = apply.Applier(kinds, networks.db, report=record, revision=revision)
                results = applier.apply(plan, desired, observed)
                code = _report(args, plan, results, started, show=report, healed=healed)
                if heal_failed:
                    code = cli.EXIT_FAILED
                elif healed and code == cli.EXIT_OK:
                    code = EXIT_CHANGED
                if code == cli.EXIT_OK and not plan.has_changes and not drifted and not later and loaded:
                    after = converged.fingerprint(args.root, args.directory, desired.inputs, key)
                    if _same_manifests(loaded, after, desired.inputs):
                        converged.record(args.root, before, after, _document(plan, results))
                        return code
                converged.forget(args.root)
                return code
            finally:
                networks.close()
    except BlockingIOError:
        print(f"reconcile: another pass holds {args.root}/reconcile.lock (--no-wait)", file=sys.stderr)
        return cli.EXIT_FAILED


def _heal_below_objects(root: str, stack: str, runtime: Any, networks: Any) -> tuple[list[str], bool]:
    """The embedded DNS daemon and our nftables rules, put back if they are gone: what
    was healed, and whether healing failed (the host is then not converged)."""
    from reconciler.control import events, observe

    healed: list[str] = []
    failed = False
    try:
        healed += ["dns"] if networks.heal_dns() else []
        keys: dict[str, str] = {}
        wanted = observe.published_ports(networks.db, runtime, networks, keys=keys)
        healed += [keys.get(owner, owner) for owner in networks.heal_firewall(wanted)]
    except Exception as exc:  # nft or the daemon refused: reported; the objects' pass goes on
        events.append(root, "heal-failed", stack=stack, reason=str(exc) or type(exc).__name__)
        print(f"reconcile: could not heal the DNS daemon or firewall rules: {exc}", file=sys.stderr)
        failed = True
    for key in healed:
        what = {"dns": "DNS daemon started", "ip_forward": "forwarding turned on"}.get(key, "firewall rules put back")
        events.append(root, "healed", key=key, stack=stack, action=what)
        print(f"reconcile: {key}: {what} (they were gone)", file=sys.stderr)
    return healed, failed


def _same_manifests(loaded: dict[str, Any], after: dict[str, Any], inputs: list[str]) -> bool:
    """The manifest files now are those the pass read (none added, none changed)."""
    files: dict[str, Any] = {path: stat for path, stat in after["files"].items() if path not in inputs}
    return bool(files == loaded["files"])


def wait_conditions(objects: list[Any]) -> dict[str, str]:
    """For each container others depend on, the strongest condition asked of it
    (completed over healthy over started)."""
    from reconciler.model.container import Container
    from reconciler.model.service import Service

    rank = {"started": 0, "healthy": 1, "completed": 2}
    found: dict[str, str] = {}
    for obj in objects:
        spec = obj.spec if isinstance(obj, Container) else obj.spec.template if isinstance(obj, Service) else None
        for target, dependency in spec.depends_on.items() if spec is not None else ():
            if rank[dependency.condition] > rank[found.get(target, "started")]:
                found[target] = dependency.condition
    return found


def manifest_revision(directory: str) -> str | None:
    """The git commit the manifests are at, when DIR is (inside) a git checkout; read
    from .git directly, no git process."""
    current = os.path.abspath(directory)
    while True:
        head = os.path.join(current, ".git", "HEAD")
        if os.path.isfile(head):
            with open(head) as handle:
                text = handle.read().strip()
            if not text.startswith("ref: "):
                return text
            ref = text[5:]
            ref_file = os.path.join(current, ".git", ref)
            if os.path.isfile(ref_file):
                with open(ref_file) as handle:
                    return handle.read().strip()
            packed = os.path.join(current, ".git", "packed-refs")
            if os.path.isfile(packed):
                with open(packed) as handle:
                    for line in handle:
                        if line.rstrip().endswith(" " + ref):
                            return line.split()[0]
            return None
        parent = os.path.dirname(current)
        if parent == current:
            return None
        current = parent


def _line(result: Result) -> None:
    print(f"{result.key}: {result.outcome}" + (f": {result.reason}" if result.reason else ""), file=sys.stderr)


def _document(plan: Plan, results: list[Result] | None) -> dict[str, Any]:
    """The machine-readable report of a pass (without its timing)."""
    return {
        "stack": plan.stack,
        "dry_run": results is None,
        "plan": json.loads(plan.model_dump_json()),
        "results": [r._asdict() for r in results or []],
    }


def _report(
    args: argparse.Namespace,
    plan: Plan,
    results: list[Result] | None,
    started: float,
    *,
    show: bool = True,
    healed: list[str] | None = None,
) -> int:
    failed = [r for r in results or [] if r.outcome in ("failed", "skipped", "conflict")]
    changed = plan.has_changes if results is None else any(r.outcome != "unchanged" for r in results)
    if not show:
        pass
    elif args.output == "json":
        seconds = round(time.monotonic() - started, 3)
        document = {**_document(plan, results), "healed": healed or [], "shortcut": False, "seconds": seconds}
        print(json.dumps(document, indent=2))
    elif results is None:
        from reconciler.cli.render import plan_text
        from reconciler.cli.style import stdout_style

        print(plan_text(plan, stdout_style(args.color), verbose=False))
    else:
        _summary(plan.stack, [r.outcome for r in results], started)
    if plan.has_conflicts or failed:
        return cli.EXIT_FAILED
    return EXIT_CHANGED if changed else cli.EXIT_OK


def _report_recorded(args: argparse.Namespace, document: dict[str, Any], started: float, *, show: bool) -> int:
    """The shortcut's report: the recorded pass's, as if this pass had made it."""
    if not show:
        pass
    elif args.output == "json":
        seconds = round(time.monotonic() - started, 3)
        print(json.dumps({**document, "healed": [], "shortcut": True, "seconds": seconds}, indent=2))
    else:
        _summary(document["stack"], [r["outcome"] for r in document["results"]], started, shortcut=True)
    return cli.EXIT_OK


def _summary(stack: str, outcomes: list[str], started: float, *, shortcut: bool = False) -> None:
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome] = counts.get(outcome, 0) + 1
    summary = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items())) or "nothing to do"
    how = " (nothing changed since the last pass)" if shortcut else ""
    print(f"stack {stack}: {summary} in {time.monotonic() - started:.2f}s{how}")
