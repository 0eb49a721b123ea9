"""``RemoteStacks``: ``engine.models.stacks.StacksAPI`` over an agent's API.

A manifests directory travels as a tar (``wire.routes.stacks``): the directory's
files and subdirectories, symlinks followed (what they point to is sent under the
link's name, as the loader reads it), ``.git`` left out. ``display_root`` is the
directory as it was named here, so errors read ``manifests/app.yaml:6:3: …``.

What a manifest names outside its directory (``../base.tar``, an absolute bind
source) is not sent: the agent resolves such paths on its own host.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import tarfile
import tempfile
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, cast

from reconciler.engine.models import stacks as models

if TYPE_CHECKING:
    from reconciler.client.transport import Transport

#: The file naming a directory's stack (``manifests.files.STACK_FILE``).
STACK_FILE = "stack.yaml"

#: Left out of the tar: a checkout's history is no manifest.
SKIPPED = frozenset({".git"})


@contextlib.contextmanager
def manifests_tar(directory: str) -> Iterator[str]:
    """``directory`` as a tar in a temporary file, removed afterwards."""
    handle, path = tempfile.mkstemp(prefix="reconcile-manifests-", suffix=".tar")
    try:
        with (
            os.fdopen(handle, "wb") as out,
            tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT, dereference=True) as tar,
        ):
            seen: set[str] = set()
            for current, directories, files in os.walk(directory, followlinks=True):
                real = os.path.realpath(current)
                if real in seen:  # a symlink loop: each directory once
                    directories[:] = []
                    continue
                seen.add(real)
                directories[:] = sorted(name for name in directories if name not in SKIPPED)
                relative = os.path.relpath(current, directory)
                if relative != ".":
                    tar.add(current, arcname=relative, recursive=False)
                for name in sorted(files):
                    full = os.path.join(current, name)
                    try:
                        regular = stat.S_ISREG(os.stat(full).st_mode)
                    except OSError:
                        continue  # a dangling symlink: the loader reports what is missing
                    if regular:
                        tar.add(full, arcname=os.path.normpath(os.path.join(relative, name)), recursive=False)
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _not_a_directory(directory: str) -> list[models.ManifestIssue]:
    """The loader's error for a directory that is not one, found here: there is
    nothing to send."""
    if os.path.isdir(directory):
        return []
    what = "does not exist" if not os.path.exists(directory) else "is not a directory"
    message = f"manifests directory {what}"
    return [
        {
            "file": directory,
            "line": 0,
            "column": 0,
            "object": None,
            "field": None,
            "message": message,
            "text": f"{directory}: {message}",
        }
    ]


def _stack_name(directory: str, stack: str | None) -> str | None:
    """The stack name the loader would take from the directory's own name (its
    ``_stack_name``), when there is no ``stack.yaml``: the agent sees only a
    temporary directory. None: let the agent decide (and report)."""
    if stack is not None or os.path.isfile(os.path.join(directory, STACK_FILE)):
        return stack
    base = os.path.basename(os.path.abspath(directory)).lower()
    name = re.sub(r"[^a-z0-9]+", "-", base).strip("-")[:63].strip("-")
    return name or None


class RemoteStacks:
    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    def validate(
        self, directory: str, *, stack: str | None = None, display_root: str | None = None
    ) -> models.ValidationReport:
        missing = _not_a_directory(directory)
        if missing:
            return {"valid": False, "errors": missing}
        with manifests_tar(directory) as tar:
            result = self.transport.call(
                "stacks.validate",
                directory=tar,
                stack=_stack_name(directory, stack),
                display_root=directory if display_root is None else display_root,
            )
        return cast(models.ValidationReport, result)

    def plan(
        self,
        directory: str,
        *,
        stack: str | None = None,
        prune: bool = True,
        prune_volumes: bool = False,
        resolve_images: models.ResolveImages | None = None,
        observed: str | None = None,
        display_root: str | None = None,
    ) -> models.PlanResult:
        missing = _not_a_directory(directory)
        if missing:
            return {"valid": False, "errors": missing}
        with manifests_tar(directory) as tar:
            result = self.transport.call(
                "stacks.plan",
                directory=tar,
                stack=_stack_name(directory, stack),
                prune=prune,
                prune_volumes=prune_volumes,
                resolve_images=resolve_images,
                observed=observed,
                display_root=directory if display_root is None else display_root,
            )
        return cast(models.PlanResult, result)

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
        progress: models.Progress | None = None,
    ) -> models.ApplyReport:
        missing = _not_a_directory(directory)
        if missing:
            return {"valid": False, "errors": missing, "exit_code": 1}
        with manifests_tar(directory) as tar:
            result = self.transport.progress(
                "stacks.apply",
                progress=progress,
                directory=tar,
                stack=_stack_name(directory, stack),
                dry_run=dry_run,
                prune=prune,
                prune_volumes=prune_volumes,
                timeout=timeout,
                no_wait=no_wait,
                display_root=directory if display_root is None else display_root,
            )
        return cast(models.ApplyReport, result)

    def status(self, *, stack: str | None = None) -> list[models.StatusRow]:
        return cast(list[models.StatusRow], self.transport.call("stacks.status", stack=stack))

    def down(
        self,
        stack: str,
        *,
        prune_volumes: bool = False,
        timeout: float = 300.0,
        progress: models.Progress | None = None,
    ) -> models.ApplyReport:
        result: Any = self.transport.progress(
            "stacks.down", progress=progress, stack=stack, prune_volumes=prune_volumes, timeout=timeout
        )
        return cast(models.ApplyReport, result)
