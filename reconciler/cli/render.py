"""Human-readable plans, in the spirit of ``terraform plan``."""

from __future__ import annotations

import json
from typing import Any

from reconciler.cli.style import Style
from reconciler.model import quantities
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


_SIZE_FIELDS = ("memory", "memory_swap", "memory_reservation", "size")
_DURATION_FIELDS = ("interval", "timeout", "start_period", "start_interval", "stop_grace_period", "monitor")


def _value(path: str, value: Any) -> str:
    """A value as users write it: sizes and durations in units, the rest as JSON."""
    field = path.rsplit(".", 1)[-1]
    if isinstance(value, int) and not isinstance(value, bool) and field in _SIZE_FIELDS:
        return quantities.format_bytes(value)
    if isinstance(value, int | float) and not isinstance(value, bool) and field in _DURATION_FIELDS:
        return quantities.format_duration(float(value))
    text = json.dumps(value, separators=(", ", ": "), sort_keys=True)
    return text if len(text) <= 120 else text[:117] + "..."


def _shown(action: Action, verbose: bool) -> bool:
    """Noops are listed with -v, or when their reason is news (a volume kept by its policy)."""
    return verbose or action.op != "noop" or action.reasons != ["up to date"]


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
        old, new = _value(change.path, change.old), _value(change.path, change.new)
        if change.old is None:
            lines.append(f"      {style('+', 'green')} {change.path}: {new}")
        elif change.new is None:
            lines.append(f"      {style('-', 'red')} {change.path}: {old}")
        else:
            lines.append(f"      {style('~', 'yellow')} {change.path}: {old} → {new}")
    return lines


def plan_text(plan: Plan, style: Style, *, verbose: bool = False) -> str:
    lines = [f"Plan for stack {style(plan.stack, 'bold')}:", ""]
    shown = [a for a in plan.actions if _shown(a, verbose)]
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
