"""Human-readable plans, in the spirit of ``terraform plan``."""

from __future__ import annotations

import json
from typing import Any

from reconciler.cli.style import Style
from reconciler.model.plan import Action, Op, Plan

_SYMBOL = {
    "create": ("+", "green"),
    "update": ("~", "yellow"),
    "recreate": ("-/+", "magenta"),
    "delete": ("-", "red"),
    "noop": ("=", "dim"),
    "conflict": ("!", "red"),
}
_VERB = {
    "create": "create",
    "update": "update in place",
    "recreate": "recreate",
    "delete": "delete",
    "noop": "unchanged",
    "conflict": "conflict",
}


_COUNTED: tuple[Op, ...] = ("create", "update", "recreate", "delete")


def _value(value: Any) -> str:
    text = json.dumps(value, separators=(", ", ": "), sort_keys=True)
    return text if len(text) <= 120 else text[:117] + "..."


def _action(action: Action, style: Style) -> list[str]:
    symbol, colour = _SYMBOL[action.op]
    verb = "rolling update" if action.rollout else _VERB[action.op]
    wave = f"  wave {action.wave}" if action.wave is not None else ""
    head = f"  {style(symbol.rjust(3), colour, 'bold')} {style(action.key, 'bold')}  ({verb}){style(wave, 'dim')}"
    lines = [head]
    for reason in action.reasons:
        if not (reason.startswith("changed: ") and action.changes) and action.op != "create":
            lines.append(f"        {style(reason, 'dim')}")
    for change in action.changes:
        if change.old is None:
            lines.append(f"      {style('+', 'green')} {change.path}: {_value(change.new)}")
        elif change.new is None:
            lines.append(f"      {style('-', 'red')} {change.path}: {_value(change.old)}")
        else:
            lines.append(f"      {style('~', 'yellow')} {change.path}: {_value(change.old)} → {_value(change.new)}")
    return lines


def plan_text(plan: Plan, style: Style, *, verbose: bool = False) -> str:
    lines = [f"Plan for stack {style(plan.stack, 'bold')}:", ""]
    shown = [a for a in plan.actions if verbose or a.op != "noop"]
    for action in shown:
        lines.extend(_action(action, style))
    if not shown:
        lines.append("  No changes: the host matches the manifests.")
    lines.append("")
    counts = ", ".join(f"{plan.count(op)} to {op}" for op in _COUNTED)
    summary = f"{counts}, {plan.count('noop')} unchanged"
    if plan.has_conflicts:
        summary += ", " + style(f"{plan.count('conflict')} in conflict", "red", "bold")
    waves = {s.wave for s in plan.steps}
    if waves:
        summary += f"; {len(plan.steps)} steps in {len(waves)} waves"
    lines.append(f"Plan: {summary}.")
    return "\n".join(lines)
