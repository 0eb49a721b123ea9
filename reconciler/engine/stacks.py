"""Stacks: a manifests directory validated, planned and applied (one pass of the
reconcile loop, ``control.once``), a stack taken down, and what the loop applied.

Results are the ``-o json`` documents of ``validate``, ``plan``, ``--once`` and
``status`` (``engine.models.stacks``). ``display_root`` names the directory in
errors, events and messages as the caller knows it: the API extracts an uploaded
directory to a temporary one, and the client's errors must still read
``manifests/app.yaml:6:3: …``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from reconciler.engine import errors
from reconciler.exitcodes import EXIT_FAILED

if TYPE_CHECKING:
    from reconciler.engine.core import Engine
    from reconciler.engine.models.stacks import (
        ApplyReport,
        PlanDocument,
        PlanResult,
        Progress,
        ResolveImages,
        StatusRow,
        ValidationReport,
    )


class Stacks:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def validate(
        self, directory: str, *, stack: str | None = None, display_root: str | None = None
    ) -> ValidationReport:
        """Every error of the directory at once, as a compiler reports them."""
        from reconciler.control import once

        desired = once.load(directory, stack=stack, display_root=display_root)
        if isinstance(desired, list):
            return {"valid": False, "errors": desired}
        return {"valid": True, "stack": desired.stack, "objects": len(desired.objects), "errors": []}

    def plan(
        self,
        directory: str,
        *,
        stack: str | None = None,
        prune: bool = True,
        prune_volumes: bool = False,
        resolve_images: ResolveImages | None = None,
        observed: str | None = None,
        display_root: str | None = None,
    ) -> PlanResult:
        """What applying the directory would do, against ``observed`` (the JSON text
        of an ``Observed`` document; default an empty host). ``resolve_images``
        compares image digests as the local store (``local``) or the registries
        (``registry``) have them now. Invalid manifests: ``validate``'s report."""
        from reconciler.control import once
        from reconciler.model.observed import Observed
        from reconciler.plan import plan as make_plan

        desired = once.load(directory, stack=stack, display_root=display_root)
        if isinstance(desired, list):
            return {"valid": False, "errors": desired}
        state = Observed()
        if observed is not None:
            try:
                state = Observed.model_validate_json(observed)
            except ValueError as exc:
                raise errors.InvalidRequest(f"cannot read observed state: {exc}") from None
        if resolve_images is not None:
            from reconciler.images import resolve
            from reconciler.model.image import Image

            images = [obj for obj in desired.objects if isinstance(obj, Image)]
            try:
                found = resolve.digests(self.engine.wiring.image_store(), images, refresh=resolve_images == "registry")
            except resolve.ResolveError as exc:
                raise errors.Unavailable(str(exc), exit_code=EXIT_FAILED) from None
            desired.image_digests.update(found)
        result = make_plan(desired, state, prune=prune, prune_volumes=prune_volumes)
        document: PlanDocument = json.loads(result.model_dump_json())
        return document

    def apply(
        self,
        directory: str,
        *,
        stack: str | None = None,
        dry_run: bool = False,
        prune: bool = True,
        prune_volumes: bool = False,
        timeout: float = 300.0,
        no_wait: bool = False,
        display_root: str | None = None,
        progress: Progress | None = None,
    ) -> ApplyReport:
        """One pass: the host made to match the directory (``dry_run``: planned
        only). ``progress`` hears each object as it is done (``kind`` "object") and
        what the user should be told meanwhile (``kind`` "notice"). Another pass
        holding the root: waited for, or ``Conflict`` with ``no_wait``."""
        from reconciler.control import once

        with self._staged(directory, display_root) as staged:
            options = once.Options(
                directory=staged,
                stack=stack,
                dry_run=dry_run,
                prune=prune,
                prune_volumes=prune_volumes,
                no_wait=no_wait,
                timeout=timeout,
                display_root=display_root,
            )
            try:
                return once.one_pass(self.engine, options, progress=progress)
            except once.Busy as exc:
                raise errors.Conflict(str(exc), exit_code=EXIT_FAILED) from None

    @contextlib.contextmanager
    def _staged(self, directory: str, display_root: str | None) -> Iterator[str]:
        """The directory under a path that is the same for every upload from one
        client path: ``ROOT/uploads/<hash of display_root>``, a symlink to it.

        The loader makes file references absolute (an Image's ``import.path``, a
        build context), and the applied manifest records them: through a fresh
        temporary directory each time, every remote pass would see an Image changed
        (re-imported, exit 2) where nothing did. Passes over one such path take its
        lock, so two uploads of it never read each other's files."""
        if display_root is None:
            yield directory
            return
        key = hashlib.sha256(display_root.encode()).hexdigest()[:16]
        uploads = os.path.join(self.engine.config.root, "uploads")
        link = os.path.join(uploads, key)
        with self.engine.locks.hold("upload", key):
            os.makedirs(uploads, exist_ok=True)
            temporary = f"{link}.{os.getpid()}.{threading.get_ident()}"
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            os.symlink(os.path.abspath(directory), temporary)
            os.replace(temporary, link)
            try:
                yield link
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(link)  # the upload goes when the request ends; no dangling link stays

    def down(
        self, stack: str, *, prune_volumes: bool = False, timeout: float = 300.0, progress: Progress | None = None
    ) -> ApplyReport:
        """Every object of ``stack`` removed (its volumes too with ``prune_volumes``):
        a pass over a directory holding only its ``stack.yaml``."""
        with tempfile.TemporaryDirectory(prefix="reconcile-down-") as directory:
            with open(os.path.join(directory, "stack.yaml"), "w") as handle:
                handle.write(f"name: {json.dumps(stack)}\n")  # JSON is YAML: any text stays one scalar
            return self.apply(
                directory,
                prune_volumes=prune_volumes,
                timeout=timeout,
                display_root=f"<down {stack}>",
                progress=progress,
            )

    def status(self, *, stack: str | None = None) -> list[StatusRow]:
        """Each object the loop applied (of ``stack``, or all): what exists now, its
        health, the commit it came from, its last outcome; then objects never
        applied whose last attempt failed."""
        from reconciler.state.db import StateError

        try:
            records = self.engine.wiring.state_db().list_objects(stack=stack)
        except StateError as exc:
            raise errors.Unavailable(str(exc), exit_code=EXIT_FAILED) from None
        last: dict[str, dict[str, Any]] = {}
        for event in self.engine.events.list():
            if event.get("event") == "object":
                last[str(event.get("key"))] = {**event}
        rows: list[StatusRow] = []
        for record in records:
            key = f"{record.kind.lower()}/{record.name}"
            latest = last.get(key, {})
            rows.append(
                {
                    "key": key,
                    "stack": record.stack,
                    "actual": self._actual(record.kind, record.name, record.digest),
                    "digest": record.digest or None,
                    "revision": record.status.get("revision"),
                    "applied_at": record.updated_at,
                    "health": self._health(record.kind, record.name),
                    "last_outcome": latest.get("outcome"),
                    "last_error": latest.get("reason") if latest.get("outcome") in ("failed", "skipped") else None,
                }
            )
        known = {row["key"] for row in rows}
        for key, failing in sorted(last.items()):  # never applied, and failing
            wanted_stack = stack is None or failing.get("stack") == stack
            if key not in known and failing.get("outcome") in ("failed", "skipped") and wanted_stack:
                rows.append(
                    {
                        "key": key,
                        "stack": failing.get("stack"),
                        "actual": "missing",
                        "digest": None,
                        "revision": None,
                        "applied_at": None,
                        "health": None,
                        "last_outcome": failing.get("outcome"),
                        "last_error": failing.get("reason"),
                    }
                )
        return rows

    def _actual(self, kind: str, name: str, digest: str) -> str:
        wiring = self.engine.wiring
        if kind == "Container":
            from reconciler.runtime.containers import ContainerError

            try:
                state = wiring.runtime().inspect(name)
            except ContainerError:
                return "missing"
            return state.status if state.exit_code is None else f"{state.status} ({state.exit_code})"
        if kind == "Network":
            record = wiring.state_db().get_network(name)
            present = record and record.bridge and os.path.exists(f"/sys/class/net/{record.bridge}")
            return "present" if present else "missing"
        if kind == "Volume":
            from reconciler.volumes.local import VolumeError

            try:
                wiring.volumes().get(name)
            except VolumeError:
                return "missing"
            return "present"
        if kind == "Service":
            replicas = [s for s in wiring.runtime().containers() if (s.spec.get("service") or {}).get("name") == name]
            running = sum(1 for s in replicas if s.status == "running")
            return f"{running}/{len(replicas)} running"
        if kind == "Image":
            return "present" if digest and wiring.image_store().content.has(digest) else "missing"
        return "unknown"

    def _health(self, kind: str, name: str) -> str | None:
        """A container's health as the agent's monitor last saw it; None without a check."""
        if kind != "Container":
            return None
        from reconciler.runtime.health import read_health

        state = read_health(self.engine.config.root, name)
        return state.status if state is not None else None
