"""``reconcile validate``, ``reconcile plan`` and ``reconcile apply`` (``--once``):
the engine's ``stacks`` group, its reports rendered.

Imports only the standard library at module level: ``--once`` on a converged host
is answered from the last pass's record in tens of milliseconds, without pydantic
or ruamel (``control.converged``).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from reconciler.cli import connect
from reconciler.cli.style import for_stream, stdout_style
from reconciler.engine.errors import EngineError
from reconciler.exitcodes import EXIT_CHANGES, EXIT_FAILED, EXIT_OK

if TYPE_CHECKING:
    from reconciler.engine.models.stacks import ApplyReport, ManifestIssue, PlanResult, ValidationReport


def print_errors(args: argparse.Namespace, errors: list[ManifestIssue]) -> None:
    """Every error, like a compiler reports them (``-o json``: validate's report)."""
    if args.output == "json":
        shown = [{key: value for key, value in error.items() if key != "text"} for error in errors]
        print(json.dumps({"valid": False, "errors": shown}, indent=2))
        return
    style = for_stream(sys.stderr, args.color)
    for error in errors:
        where, _, rest = error["text"].partition(": ")
        print(f"{style(where, 'bold')}: {rest}", file=sys.stderr)
    count = len(errors)
    print(f"{args.directory}: {count} error{'s' if count != 1 else ''}; nothing applied", file=sys.stderr)


def _failed(exc: EngineError) -> int:
    print(f"reconcile: {exc.message}", file=sys.stderr)
    return exc.exit_code if exc.exit_code is not None else EXIT_FAILED


def validate(args: argparse.Namespace) -> int:
    try:
        report: ValidationReport = connect.engine(args).stacks.validate(args.directory, stack=args.stack)
    except EngineError as exc:
        return _failed(exc)
    if not report["valid"]:
        print_errors(args, report["errors"])
        return EXIT_FAILED
    if args.output == "json":
        print(json.dumps({"valid": True, "stack": report["stack"], "objects": report["objects"], "errors": []}))
    else:
        print(f"{args.directory}: stack {report['stack']!r}, {report['objects']} objects, valid")
    return EXIT_OK


def plan(args: argparse.Namespace) -> int:
    observed = None
    if args.observed:
        try:
            with open(args.observed, encoding="utf-8") as handle:
                observed = handle.read()
        except (OSError, ValueError) as exc:
            print(f"{args.observed}: cannot read observed state: {exc}", file=sys.stderr)
            return EXIT_FAILED
    try:
        result: PlanResult = connect.engine(args).stacks.plan(
            args.directory,
            stack=args.stack,
            prune=args.prune,
            prune_volumes=args.prune_volumes,
            resolve_images=args.resolve_images,
            observed=observed,
        )
    except EngineError as exc:
        if args.observed and exc.message.startswith("cannot read observed state: "):
            print(f"{args.observed}: {exc.message}", file=sys.stderr)
            return EXIT_FAILED
        return _failed(exc)
    if "format_version" not in result:
        print_errors(args, result["errors"])
        return EXIT_FAILED
    from reconciler.model.plan import Plan

    document = Plan.model_validate(result)
    if args.output == "json":
        sys.stdout.write(document.model_dump_json(indent=2) + "\n")
    else:
        from reconciler.cli.render import plan_text

        print(plan_text(document, stdout_style(args.color), verbose=args.verbose))
    if document.has_conflicts:
        return EXIT_FAILED
    if args.detailed_exitcode and document.has_changes:
        return EXIT_CHANGES
    return EXIT_OK


def apply(args: argparse.Namespace) -> int:
    """``reconcile apply DIR`` / ``reconcile --once DIR``: one pass. Text: each object
    on stderr as it is done, a summary on stdout (``--dry-run``: the plan); JSON:
    the pass's report."""

    def progress(event: dict[str, Any]) -> None:
        if event["kind"] == "notice":
            print(event["message"], file=sys.stderr)
        elif args.output != "json":
            reason = f": {event['reason']}" if event.get("reason") else ""
            print(f"{event['key']}: {event['outcome']}{reason}", file=sys.stderr)

    engine = connect.engine(args)
    try:
        report: ApplyReport = engine.stacks.apply(
            args.directory,
            stack=args.stack,
            dry_run=args.dry_run,
            prune=args.prune,
            prune_volumes=args.prune_volumes,
            timeout=args.timeout,
            no_wait=args.no_wait,
            progress=progress,
        )
    except EngineError as exc:
        return _failed(exc)
    finally:
        engine.close()  # the state database's connection: closed as the pass ends
    code = report["exit_code"]
    if report.get("valid") is False:
        print_errors(args, report.get("errors", []))
        return code
    if args.output == "json":
        print(json.dumps({key: value for key, value in report.items() if key != "exit_code"}, indent=2))
    elif report["dry_run"]:
        from reconciler.cli.render import plan_text
        from reconciler.model.plan import Plan

        print(plan_text(Plan.model_validate(report["plan"]), stdout_style(args.color), verbose=False))
    else:
        _summary(report["stack"], [r["outcome"] for r in report["results"]], report["seconds"], report["shortcut"])
    return code


def _summary(stack: str, outcomes: list[str], seconds: float, shortcut: bool) -> None:
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome] = counts.get(outcome, 0) + 1
    summary = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items())) or "nothing to do"
    how = " (nothing changed since the last pass)" if shortcut else ""
    print(f"stack {stack}: {summary} in {seconds:.2f}s{how}")
