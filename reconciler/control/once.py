"""``reconcile --once DIR``: one pass of observe → plan → apply, for CI.

Exit codes (stable): 0 converged and nothing changed; 2 converged after applying
changes; 1 failed (invalid manifests, a conflict, an action that failed). With
``--dry-run`` nothing is touched (no pulls, no builds) and the code says whether
there would be changes (2) or not (0).

Two passes on one root never interleave: ``ROOT/reconcile.lock`` is held for the
whole pass; a second one waits, saying so, or fails at once with ``--no-wait``.

A pass returns its report (``engine.models.stacks.ApplyReport``: what ``--once -o
json`` prints, with the exit code) and tells ``progress`` of each object as it is
done and of what the user should hear meanwhile; rendering is the front end's.
Drivers come from the ``Engine``'s wiring, never built here.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, NamedTuple, cast

from reconciler.exitcodes import EXIT_CHANGES, EXIT_FAILED, EXIT_OK

if TYPE_CHECKING:
    from reconciler.control.apply import Result
    from reconciler.engine.core import Engine
    from reconciler.engine.models.stacks import ApplyReport, ManifestIssue
    from reconciler.manifests.errors import ManifestError
    from reconciler.model.manifest import Desired
    from reconciler.model.plan import Plan

#: Kept for callers that named it here.
EXIT_CHANGED = EXIT_CHANGES

#: Hears a pass's progress: {"kind": "object", key, outcome, reason} as each object
#: is done, {"kind": "notice", "message"} for the user's stderr.
Progress = Callable[[dict[str, Any]], None]


class Options(NamedTuple):
    """What a pass is asked to do. ``display_root`` is how errors, events and
    messages name ``directory`` (a remote client's path for an uploaded copy)."""

    directory: str
    stack: str | None = None
    dry_run: bool = False
    prune: bool = True
    prune_volumes: bool = False
    no_wait: bool = False
    timeout: float = 300.0
    display_root: str | None = None

    @property
    def shown(self) -> str:
        return self.display_root if self.display_root is not None else self.directory


class Busy(Exception):
    """Another pass holds the root's lock and ``no_wait`` was asked."""


def _notice(progress: Progress | None, message: str) -> None:
    if progress is not None:
        progress({"kind": "notice", "message": message})


@contextlib.contextmanager
def root_lock(root: str, *, wait: bool, progress: Progress | None = None) -> Iterator[None]:
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, "reconcile.lock"), "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                raise Busy(f"another pass holds {root}/reconcile.lock (--no-wait)") from None
            _notice(progress, f"reconcile: another pass holds {root}/reconcile.lock; waiting")
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def issues(errors: list[ManifestError], directory: str, display_root: str | None) -> list[ManifestIssue]:
    """Manifest errors as reports show them, paths under ``directory`` named from
    ``display_root`` when given."""

    def shown(text: str) -> str:
        if display_root is None or not text:
            return text
        return text.replace(directory.rstrip("/") or "/", display_root.rstrip("/") or "/")

    found: list[ManifestIssue] = []
    for error in errors:
        found.append(
            {
                "file": shown(error.file),
                "line": error.line,
                "column": error.column,
                "object": error.obj,
                "field": error.field,
                "message": shown(error.message),
                "text": shown(str(error)),
            }
        )
    return found


def load(directory: str, *, stack: str | None, display_root: str | None = None) -> Desired | list[ManifestIssue]:
    """The desired state of ``directory``, or every error in it."""
    from reconciler.manifests.errors import InvalidManifests
    from reconciler.manifests.loader import load_directory

    try:
        return load_directory(directory, stack=stack)
    except InvalidManifests as exc:
        return issues(exc.errors, directory, display_root)


def one_pass(engine: Engine, options: Options, *, progress: Progress | None = None) -> ApplyReport:
    """Load, lock, observe, plan, apply: the pass's report, with its exit code.

    First, unless this is a dry run, the shortcut: when the last pass found nothing
    to do and nothing it depended on has changed since (``control.converged``), its
    report is repeated without loading a manifest or observing a container.

    Raises ``Busy`` when another pass holds the root and ``options.no_wait``."""
    from reconciler.control import converged

    root = engine.config.root
    started = time.monotonic()
    key = shortcut_key(engine, options)
    if not options.dry_run and os.path.exists(os.path.join(root, converged.RECORD)):
        with root_lock(root, wait=not options.no_wait, progress=progress):
            recorded = converged.still_converged(root, options.directory, key)
        if recorded is not None:
            seconds = round(time.monotonic() - started, 3)
            return cast("ApplyReport", {**recorded, "healed": [], "shortcut": True, "seconds": seconds, "exit_code": 0})
    loaded = None if options.dry_run else converged.fingerprint(root, options.directory, [], key)
    return _full_pass(engine, options, progress=progress, started=started, key=key, loaded=loaded)


def shortcut_key(engine: Engine, options: Options) -> dict[str, Any]:
    """What, besides the inputs, shapes a pass's plan: a record made under other
    arguments (or by another version) is not used."""
    from reconciler import __version__

    return {
        "version": __version__,
        "directory": os.path.abspath(options.directory),
        "stack": options.stack,
        "prune": options.prune,
        "prune_volumes": options.prune_volumes,
        "cgroup_parent": engine.config.cgroup_parent,
    }


def _full_pass(
    engine: Engine,
    options: Options,
    *,
    progress: Progress | None,
    started: float,
    key: dict[str, Any],
    loaded: dict[str, Any] | None,
) -> ApplyReport:
    """The pass itself. ``loaded`` is the fingerprint taken before the manifests were
    read (None on a dry run): a pass that changes nothing records itself only when the
    manifests are still those it read."""
    from reconciler.control import apply, converged, drivers, events, observe
    from reconciler.images import resolve
    from reconciler.model.image import Image
    from reconciler.plan import plan as make_plan

    root = engine.config.root
    desired = load(options.directory, stack=options.stack, display_root=options.display_root)
    if isinstance(desired, list):
        events.append(root, "invalid", directory=options.shown, action="nothing applied")
        return {"valid": False, "errors": desired, "exit_code": EXIT_FAILED}
    with root_lock(root, wait=not options.no_wait, progress=progress):
        before = converged.fingerprint(root, options.directory, desired.inputs, key)
        images = engine.wiring.image_store()
        image_objects = {o.metadata.name: o for o in desired.objects if isinstance(o, Image)}
        desired.image_digests.update(resolve.digests(images, image_objects.values()))
        runtime = engine.wiring.runtime()
        networks = engine.wiring.network_manager()
        volumes = engine.wiring.volumes()
        drifted: list[str] = []
        later: list[str] = []
        observed = observe.observe(networks.db, runtime, networks, volumes, images, drifted=drifted, later=later)
        for drifted_key in drifted:
            events.append(root, "drift", key=drifted_key, stack=desired.stack, action="reported, not healed")
            _notice(progress, f"reconcile: {drifted_key} drifted (drift: warn): not healed")
        # not objects of the plan, but drift all the same
        healed, heal_failed = (
            ([], False) if options.dry_run else _heal_below_objects(root, desired.stack, runtime, networks, progress)
        )
        plan = make_plan(desired, observed, prune=options.prune, prune_volumes=options.prune_volumes)
        if options.dry_run:
            return _report(plan, None, started)
        kinds = drivers.Drivers(
            stack=desired.stack,
            runtime=runtime,
            images=images,
            networks=networks,
            volumes=volumes,
            desired_images=image_objects,
            db=networks.db,
            conditions=wait_conditions(desired.objects),
            timeout=options.timeout,
            engine=engine,
        )
        revision = manifest_revision(options.directory)

        def record(result: Result) -> None:
            events.append(
                root,
                "object",
                key=result.key,
                outcome=result.outcome,
                reason=result.reason,
                stack=desired.stack,
                revision=revision,
            )
            if progress is not None:
                progress({"kind": "object", **result._asdict()})

        applier = apply.Applier(kinds, networks.db, report=record, revision=revision)
        with engine.images.writing():  # images pulled, built or imported: no collection meanwhile
            results = applier.apply(plan, desired, observed)
        report = _report(plan, results, started, healed=healed)
        code = report["exit_code"]
        if heal_failed:
            code = EXIT_FAILED
        elif healed and code == EXIT_OK:
            code = EXIT_CHANGES
        report["exit_code"] = code
        if code == EXIT_OK and not plan.has_changes and not drifted and not later and loaded:
            after = converged.fingerprint(root, options.directory, desired.inputs, key)
            if _same_manifests(loaded, after, desired.inputs):
                converged.record(root, before, after, _document(plan, results))
                return report
        converged.forget(root)
        return report


def _heal_below_objects(
    root: str, stack: str, runtime: Any, networks: Any, progress: Progress | None
) -> tuple[list[str], bool]:
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
        _notice(progress, f"reconcile: could not heal the DNS daemon or firewall rules: {exc}")
        failed = True
    for key in healed:
        what = {"dns": "DNS daemon started", "ip_forward": "forwarding turned on"}.get(key, "firewall rules put back")
        events.append(root, "healed", key=key, stack=stack, action=what)
        _notice(progress, f"reconcile: {key}: {what} (they were gone)")
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


def _document(plan: Plan, results: list[Result] | None) -> dict[str, Any]:
    """The machine-readable report of a pass (without its timing)."""
    return {
        "stack": plan.stack,
        "dry_run": results is None,
        "plan": json.loads(plan.model_dump_json()),
        "results": [r._asdict() for r in results or []],
    }


def _report(
    plan: Plan, results: list[Result] | None, started: float, *, healed: list[str] | None = None
) -> ApplyReport:
    """The report of a full pass, and its exit code: 1 when anything failed or is in
    conflict, else 2 when anything changed (dry: would change), else 0."""
    failed = [r for r in results or [] if r.outcome in ("failed", "skipped", "conflict")]
    changed = plan.has_changes if results is None else any(r.outcome != "unchanged" for r in results)
    code = EXIT_FAILED if plan.has_conflicts or failed else EXIT_CHANGES if changed else EXIT_OK
    seconds = round(time.monotonic() - started, 3)
    document = {**_document(plan, results), "healed": healed or [], "shortcut": False, "seconds": seconds}
    return cast("ApplyReport", {**document, "exit_code": code})
