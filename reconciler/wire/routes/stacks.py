"""Stacks over HTTP (``engine.models.stacks``).

A manifests directory travels as a tar (``application/x-tar``) that the server
extracts to a temporary directory, passed as ``directory`` and removed when the
operation ends. ``display_root`` is the directory as the client named it: errors,
events and messages name files under it (``manifests/app.yaml:6:3: …``), never
the temporary path. ``validate`` and ``plan`` are ``upload`` routes (one JSON
answer); ``apply`` and ``down`` are ``progress`` routes: a ``{"progress": …}`` line
per object as it is done (``{"kind": "object", "key", "outcome", "reason"}``) and
per notice for the user (``{"kind": "notice", "message"}``: a lock waited for,
drift, something healed), then the report.
"""

from __future__ import annotations

from reconciler.wire.route import Route

MANIFESTS = ("directory", "application/x-tar")

ROUTES: tuple[Route, ...] = (
    Route(
        "POST",
        "/v1/stacks/validate",
        "stacks.validate",
        kind="upload",
        query=(("stack", "str"), ("display_root", "str")),
        body=MANIFESTS,
        result="stacks.ValidationReport",
        summary="check a manifests directory and report every error",
    ),
    Route(
        "POST",
        "/v1/stacks/plan",
        "stacks.plan",
        kind="upload",
        query=(
            ("stack", "str"),
            ("prune", "bool"),
            ("prune_volumes", "bool"),
            ("resolve_images", "str"),
            ("observed", "str"),
            ("display_root", "str"),
        ),
        body=MANIFESTS,
        result="stacks.PlanResult",
        summary="what applying the manifests would change (invalid manifests: validate's report)",
    ),
    Route(
        "POST",
        "/v1/stacks/apply",
        "stacks.apply",
        kind="progress",
        query=(
            ("stack", "str"),
            ("dry_run", "bool"),
            ("prune", "bool"),
            ("prune_volumes", "bool"),
            ("timeout", "float"),
            ("no_wait", "bool"),
            ("display_root", "str"),
        ),
        body=MANIFESTS,
        result="stacks.ApplyReport",
        summary="one pass: make the host match the manifests; progress per object; the report has exit_code",
    ),
    Route(
        "GET",
        "/v1/stacks/status",
        "stacks.status",
        query=(("stack", "str"),),
        result="list[stacks.StatusRow]",
        summary="what the reconcile loop applied, what exists now, last errors",
    ),
    Route(
        "POST",
        "/v1/stacks/{stack}/down",
        "stacks.down",
        kind="progress",
        query=(("prune_volumes", "bool"), ("timeout", "float")),
        result="stacks.ApplyReport",
        summary="remove every object of a stack (its volumes too with prune_volumes)",
    ),
)
