"""Stacks: a manifests directory validated, planned, applied; what the reconcile
loop applied and what exists now.

Each result is what the CLI prints with ``-o json`` (``validate``, ``plan``,
``apply``/``--once``, ``status``), so a remote CLI prints the document it received.
Paths in errors are the caller's: an engine given ``display_root`` (the directory as
the client named it, when it was uploaded and extracted elsewhere) reports
``<display_root>/app.yaml:6:3: …``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, NotRequired, Protocol, Required, TypedDict

ResolveImages = Literal["local", "registry"]


class ManifestIssue(TypedDict):
    """One error of a manifests directory, as a compiler reports it. ``line`` and
    ``column`` are 1-based; 0 means the whole file. ``text`` is the one-line form
    (``file:line:column: kind/name: field: message``)."""

    file: str
    line: int
    column: int
    object: str | None
    field: str | None
    message: str
    text: str


class ValidationReport(TypedDict):
    """``validate -o json``. ``stack`` and ``objects`` only when valid."""

    valid: bool
    stack: NotRequired[str]
    objects: NotRequired[int]
    errors: list[ManifestIssue]


class PlanChange(TypedDict):
    path: str
    old: Any
    new: Any


class PlanAction(TypedDict):
    key: str
    kind: str
    name: str
    op: Literal["create", "update", "recreate", "delete", "noop", "conflict"]
    reasons: list[str]
    changes: list[PlanChange]
    rollout: bool
    depends_on: list[str]
    wave: int | None


class PlanStep(TypedDict):
    wave: int
    key: str
    phase: Literal["teardown", "setup"]
    after: list[str]


class PlanDocument(TypedDict):
    """``plan -o json`` (``schemas/plan.json``, format_version 1)."""

    format_version: int
    stack: str
    actions: list[PlanAction]
    steps: list[PlanStep]


#: ``plan``'s answer: the plan, or ``validate``'s report when the manifests are invalid.
PlanResult = PlanDocument | ValidationReport


class ObjectResult(TypedDict):
    """What became of one object in a pass."""

    key: str
    outcome: Literal["unchanged", "created", "updated", "recreated", "deleted", "failed", "skipped", "conflict"]
    reason: str


class ApplyReport(TypedDict, total=False):
    """``--once -o json`` plus the exit code the pass ends with: 0 converged and
    nothing changed, 2 changes applied (or, dry, to apply), 1 failed.

    Invalid manifests apply nothing: the report is then ``validate -o json``'s
    (``valid`` false, ``errors``) with ``exit_code`` 1."""

    stack: str
    dry_run: bool
    plan: PlanDocument
    results: list[ObjectResult]
    healed: list[str]  # what was put back below the objects (DNS daemon, firewall rules)
    shortcut: bool  # answered from the record of the last converged pass
    seconds: float
    valid: bool
    errors: list[ManifestIssue]
    exit_code: Required[int]


class StatusRow(TypedDict):
    """One object of ``status``: what was applied, what exists now, the last error."""

    key: str
    stack: str | None
    actual: str  # running, exited (1), present, missing, 2/3 running …
    digest: str | None
    revision: str | None
    applied_at: float | None
    health: str | None
    last_outcome: str | None
    last_error: str | None


class PassProgress(TypedDict, total=False):
    """One progress event of ``apply``/``down``: ``kind`` "object" (one object done:
    ``key``, ``outcome``, ``reason``) or "notice" (``message``, for the user's
    stderr: a lock waited for, drift reported, something healed)."""

    kind: Required[Literal["object", "notice"]]
    key: str
    outcome: str
    reason: str
    message: str


Progress = Callable[[dict[str, Any]], None]


class StacksAPI(Protocol):
    """What every front end may do with stacks. ``directory`` is a manifests
    directory on the engine's host (a remote client uploads it as a tar, which the
    agent extracts to a temporary directory: ``display_root`` then names it in
    errors, events and messages as the client named it).

    ``plan`` and ``apply`` answer invalid manifests with ``validate``'s report
    (``valid`` false) instead of a plan: a front end prints the errors."""

    def validate(
        self, directory: str, *, stack: str | None = None, display_root: str | None = None
    ) -> ValidationReport: ...

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
    ) -> PlanResult: ...

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
    ) -> ApplyReport: ...

    def status(self, *, stack: str | None = None) -> list[StatusRow]: ...

    def down(
        self, stack: str, *, prune_volumes: bool = False, timeout: float = 300.0, progress: Progress | None = None
    ) -> ApplyReport: ...
